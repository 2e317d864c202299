"""Imported by succeeds.py from the script's own folder."""

VALUE = 42
