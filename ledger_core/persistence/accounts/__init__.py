"""Organizations, users and counterparty links."""
