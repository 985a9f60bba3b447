#!/usr/bin/env python3
"""Oui Post's one entry point: `python run.py [serve|worker|migrate|create-admin|create-key] --help`."""

import sys

from ouipost.cli import main

if __name__ == "__main__":
    sys.exit(main())
