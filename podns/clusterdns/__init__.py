"""Cluster DNS: the Kubernetes DNS-Based Service Discovery spec, served from precomputed answers.

Entry points: `podns.clusterdns.wiring.ClusterDNS` (informers -> index -> UDP/TCP server + metrics),
wired by `podns dns` and `podns up`; see README.md in this folder and docs/dns.md.
"""
