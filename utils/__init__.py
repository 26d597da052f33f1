"""Shared library behind the scripts in scripts/ (one module, one job)."""
