"""ServiceAccounts: stored as given; the SECRETS column; the `token` subresource (TokenRequest,
served by `podns.api.handlers.serviceaccounttoken`)."""

from __future__ import annotations

from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources.base import Column, Obj


class ServiceAccountStrategy(KindStrategy):
    schema_type = "core.v1.ServiceAccount"
    subresources = ("token",)

    def columns(self) -> list[Column]:
        return [
            Column("Secrets", type="integer",
                description=(
                    "Secrets is a list of the secrets in the same namespace that pods running using "
                    "this ServiceAccount are allowed to use."
                )),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        return [len(obj.get("secrets") or [])]
