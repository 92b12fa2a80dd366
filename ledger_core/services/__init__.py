"""The use cases: one function each, over a unit of work and the acting principal.

A use case decides (authorization, the domain rules), writes through
`ledger_core.persistence` in one database transaction (`engine.begin()`, the unit of
work: committed when the use case returns, rolled back when it raises) and records
the audit trail in that same transaction. Routes, actors and CLI commands are adapters
that parse, call one use case and render.
"""
