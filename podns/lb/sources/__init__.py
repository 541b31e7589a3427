"""Where a balancer learns a service's endpoints: DNS, a Kubernetes watch, or a static list."""

from podns.lb.sources.base import Source, Target, Update
from podns.lb.sources.dns import DNS
from podns.lb.sources.static import Static
from podns.lb.sources.watch import Watch

__all__ = ["DNS", "Source", "Static", "Target", "Update", "Watch"]
