"""VaultCraft benchmark harness: see BENCHMARKS.md."""
