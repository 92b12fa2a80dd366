"""Request and response models per API area; declared once on each route in `gateway.routes`."""
