"""podns.store."""
