"""The Dramatiq broker, its queues and the messages the gateway and the workers send.

Senders import this package, never the receiving worker."""
