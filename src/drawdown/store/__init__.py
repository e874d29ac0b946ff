"""Storage: tables, transactions, locking and the queries. The only package that speaks SQL."""
