"""The HTTP API: Togai's Credits API and drawdown's applications API."""
