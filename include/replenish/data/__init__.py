"""Reference data: the real ddop bakery panel and the retailer generated around it."""
