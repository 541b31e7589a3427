"""The Kubernetes REST API over a Store, split as kube-apiserver is (see README.md here).

`server` (HTTP app, filters, certificates) > `dashboard` > `handlers` (generic REST) >
`discovery` > `encoding` > `statuserror` > `resources` (the registry of kinds): each layer
imports only those below it (an import-linter contract).
"""
