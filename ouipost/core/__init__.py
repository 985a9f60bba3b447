"""Plumbing every layer may use: the clock, ids, encryption, the error hierarchy, logs, metrics."""
