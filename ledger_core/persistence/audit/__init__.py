"""The audit trail: records, their hash chain, and reading them."""
