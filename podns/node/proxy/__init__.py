"""ClusterIP proxies of the node agent (kube-proxy's job).

Loopback mode: `ServiceProxy` (`userspace.py`), listening on every cluster IP and forwarding
each connection in asyncio. Netns mode: `NftProxier` (`kernel.py`), kernel NAT rules in the
node's own nftables table (`nftables.py` renders them, `nft.py` applies them), reachable from
pods and from the host; the userspace proxy then serves only loopback cluster IPs. Both pick
endpoints with `serviceports` (ready, serving, not terminating).
"""

from podns.node.proxy.kernel import NftProxier
from podns.node.proxy.userspace import ServiceProxy

__all__ = ["NftProxier", "ServiceProxy"]
