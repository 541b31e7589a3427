"""podns.objects."""
