"""Analytics: rollups written at posting time and the aggregate queries over them."""
