"""Deployment controller: rolling updates over ReplicaSets, revision history, pause/resume."""
