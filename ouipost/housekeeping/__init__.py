"""Housekeeping: how long each kind of row is kept, and deleting the rest."""
