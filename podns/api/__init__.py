"""podns.api."""
