"""A tiny authoritative DNS server for testing DNS clients: a dict of answers, served over UDP
on loopback by a background thread. Mutable while running, so tests can change the zone."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rrset


class ZoneServer:
    """answers[(name, type)] = (answer rrsets, additional rrsets); unknown names -> NXDOMAIN."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[list[dns.rrset.RRset], list[dns.rrset.RRset]]] = {}
        self.existing: set[str] = set()
        self.queries = 0
        self.silent = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def set(self, name: str, rdtype: str, ttl: int, *rdatas: str, additional: list[str] = ()) -> None:
        name = name.lower().rstrip(".") + "."
        ans = [dns.rrset.from_text(name, ttl, "IN", rdtype, *rdatas)] if rdatas else []
        add = []
        for line in additional:
            owner, rttl, rtype, data = line.split(maxsplit=3)
            add.append(dns.rrset.from_text(owner, int(rttl), "IN", rtype, data))
        self.answers[(name, rdtype)] = (ans, add)
        self.existing.add(name)

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries += 1
            if self.silent:
                continue
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AA
            qn = q.question[0].name.to_text().lower()
            qt = dns.rdatatype.to_text(q.question[0].rdtype)
            if (qn, qt) in self.answers:
                ans, add = self.answers[(qn, qt)]
                r.answer.extend(ans)
                r.additional.extend(add)
            elif qn not in self.existing:
                r.set_rcode(dns.rcode.NXDOMAIN)
            if not r.answer:
                r.authority.append(
                    dns.rrset.from_text("cluster.local.", 5, "IN", "SOA", "ns. host. 1 7200 1800 86400 5")
                )
            self.sock.sendto(r.to_wire(), peer)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()
