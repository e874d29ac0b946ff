"""drawdown: a credits ledger for usage-based billing that speaks Togai's Credits API."""

__version__ = "0.1.0"
