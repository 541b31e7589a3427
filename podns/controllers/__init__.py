"""podns.controllers."""
