"""The rules of credits as pure code: no I/O, no framework."""
