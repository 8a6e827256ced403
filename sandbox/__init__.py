"""Hardened Docker sandboxes: one container per run, tools run through its executor."""
