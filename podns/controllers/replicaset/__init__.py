"""ReplicaSet controller: a number of interchangeable pods from one template."""
