"""Periodic work, runnable inside the server or alone."""
