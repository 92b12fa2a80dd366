"""The ledger's persistence: SQLAlchemy tables, the posting SQL and database helpers."""
