"""Job controller: pods run to completion, with back-off, deadlines and TTL."""
