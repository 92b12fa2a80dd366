"""Settings, logs, metrics and the embedded servers: the bottom layer every process
imports. It imports no other VaultCraft package."""
