"""TLS settings of the etcd store (kube-apiserver's --etcd-cafile, --etcd-certfile,
--etcd-keyfile), apart from the etcd backend so that naming them imports no HTTP client."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EtcdTLS:
    """TLS to etcd, as kube-apiserver's --etcd-cafile, --etcd-certfile, --etcd-keyfile: the CA
    that signed etcd's serving certificate (None: the system's CAs) and the client certificate
    and key etcd's `--client-cert-auth` asks for (both or neither)."""

    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    def context(self) -> ssl.SSLContext:
        """The client SSL context; ValueError naming the file that cannot be used."""
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("--etcd-certfile and --etcd-keyfile go together")
        try:
            ctx = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"etcd CA file {self.cafile}: {exc}") from None
        if self.certfile is not None and self.keyfile is not None:
            for path in (self.certfile, self.keyfile):
                if not path.is_file():
                    raise ValueError(f"etcd TLS file {path}: no such file")
            try:
                ctx.load_cert_chain(str(self.certfile), str(self.keyfile))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"etcd client certificate {self.certfile} / key {self.keyfile}: "
                                 f"{exc}") from None
        return ctx
