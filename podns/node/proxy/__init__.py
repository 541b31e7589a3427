"""ClusterIP proxies of the node agent (kube-proxy's job).

Loopback mode: `ServiceProxy` (`userspace.py`), listening on every cluster IP and forwarding
each connection in asyncio. Netns mode: `KernelProxier` (`kernel.py`), kernel NAT rules
reachable from pods and from the host, through one of two backends: the node's own nftables
table (`nftables.py` renders it, `nft.py` applies it) or, where nft is missing, the node's own
iptables chains (`iptables.py` renders them, `ipt.py` applies them); `tools.py` runs either
tool. The userspace proxy then serves only loopback cluster IPs. All of them pick endpoints
with `serviceports` (ready, serving, not terminating; traffic policies Local by `nodeName`), and
answer health check node ports with `healthcheck`.
"""

from podns.node.proxy.kernel import KernelProxier, NftProxier
from podns.node.proxy.userspace import ServiceProxy

__all__ = ["KernelProxier", "NftProxier", "ServiceProxy"]
