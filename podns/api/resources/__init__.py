"""Per-kind API behaviour (defaulting, validation, printing) and the registry of served kinds."""
