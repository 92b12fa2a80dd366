"""One module per API area, each with a `routes` table registered in `gateway.app`."""
