"""podns.node."""
