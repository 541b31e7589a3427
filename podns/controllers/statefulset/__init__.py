"""StatefulSet controller: pods with stable names, hostnames and volumes, ordered or parallel."""
