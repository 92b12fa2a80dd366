"""Settlement of cross-organization positions, and reading settlements."""
