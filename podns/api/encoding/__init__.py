"""Encodings of the API: request bodies (JSON, YAML, protobuf), response negotiation, Tables."""
