"""The jobs queue: every query on the jobs table (the worker loop is workers/worker.py)."""
