"""JSON APIs: the device API and the admin API under /api/v1."""
