"""Events: the outbox, its relay, webhook endpoints and their deliveries."""
