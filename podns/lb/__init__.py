"""podns.lb."""
