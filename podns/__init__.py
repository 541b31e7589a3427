"""podns: Kubernetes-style headless services, cluster DNS and client-side load balancing."""

__version__ = "0.1.0"
