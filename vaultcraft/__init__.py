"""VaultCraft process-level glue: settings, embedded services, the command line."""
