"""What the API serves, described for clients: discovery documents (legacy, aggregated) and OpenAPI."""
