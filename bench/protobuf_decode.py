"""Decoding cost of a protobuf request body vs the JSON body of the same object.

Peer compared: orjson.loads of the JSON body kubectl 1.27 would send (what the API server
does for JSON). Objects: a kubectl-created Service, a Pod with the usual trimmings, and a
StatefulSet (Pod template inside). Prints the median microseconds per decode and the ratio.

    .venv/bin/python bench/protobuf_decode.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from podns.api.encoding import protobuf
from tests.api.test_protobuf_kinds import OBJECTS

ROUNDS = 7
LOOPS = 300


def median_us(fn: object, arg: bytes) -> float:
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(LOOPS):
            fn(arg)  # type: ignore[operator]
        times.append((time.perf_counter() - t0) / LOOPS * 1e6)
    return statistics.median(times)


def main() -> None:
    objects = dict(OBJECTS)
    print(f"{'kind':<12} {'pb bytes':>8} {'json bytes':>10} {'protobuf.decode us':>18} "
          f"{'orjson.loads us':>15} {'ratio':>6}")
    for kind in ("Service", "Pod", "StatefulSet"):
        obj = protobuf.decode(protobuf.encode(objects[kind]))
        pb, js = protobuf.encode(obj), orjson.dumps(obj)
        assert protobuf.decode(pb) == orjson.loads(js)
        t_pb, t_js = median_us(protobuf.decode, pb), median_us(orjson.loads, js)
        print(f"{kind:<12} {len(pb):>8} {len(js):>10} {t_pb:>18.1f} {t_js:>15.1f} {t_pb / t_js:>6.0f}x")


if __name__ == "__main__":
    main()
