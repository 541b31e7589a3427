"""What the API server and node agents agree on about the node endpoint (the kubelet's port).

The node agent serves its endpoint over TLS with a certificate from the cluster CA and accepts
only clients presenting a certificate from that CA whose common name is `APISERVER_CLIENT_CN`:
the API server's kubelet-client identity (kubeadm's `apiserver-kubelet-client.crt`). Anyone
else, token holders included, reaches pods' logs, exec and port-forward only through the API
server, where authentication and authorization apply.
"""

from __future__ import annotations

#: common name of the API server's client certificate towards node agents
APISERVER_CLIENT_CN = "kube-apiserver-kubelet-client"
