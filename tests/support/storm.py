"""Concurrent HTTP storms against served stacks: threads released together, who answered."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 30
SPREAD = {"X-Test-Delay": "0.05"}  # each request holds its worker 50 ms: the storm spreads over workers


def storm(count: int, send):
    """`send(index)` from `count` threads released together; returns the responses."""
    barrier = threading.Barrier(count)

    def one(index):
        barrier.wait(TIMEOUT)
        return send(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def workers_of(responses) -> set[str]:
    return {r.headers.get("X-Test-Worker") for r in responses}
