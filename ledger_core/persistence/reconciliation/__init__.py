"""Reconciliation: the checks, their runs and reports, and the ledger invariants."""
