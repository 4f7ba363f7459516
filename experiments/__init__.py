"""Runnable experiments; each is `python -m experiments.<name>`."""
