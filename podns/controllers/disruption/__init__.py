"""Disruption controller: the status of PodDisruptionBudgets, which evictions consult."""
