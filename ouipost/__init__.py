"""Oui Post: a self-hostable social media publishing API."""

__version__ = "0.1.0"
