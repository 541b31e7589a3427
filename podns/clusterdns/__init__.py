"""podns.clusterdns."""
