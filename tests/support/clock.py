"""The `clock` fixture: the app's clock moved forward by the test instead of waiting for time to pass."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from app import timeutil
from app.redis_store import RedisStore
from app.store import SharedStore


class SteppedClock(timeutil.Clock):
    """Real time plus the seconds a test has advanced it (time still flows between the steps)."""

    def __init__(self):
        self.offset = 0.0

    def now(self, tz: timezone) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), tz)

    def timestamp(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float, *holders) -> None:
        """Move the app's clock `seconds` forward. A Redis server counts its keys' TTLs itself:
        for each app or store given that keeps its state in Redis, every key of its namespace
        with a TTL loses `seconds` of it (and is gone when nothing is left), as if they had passed."""
        self.offset += seconds
        for holder in holders:
            store = holder if isinstance(holder, SharedStore) else holder.extensions["shared_store"]
            if isinstance(store, RedisStore):
                _age_keys(store, seconds)


def _age_keys(store: RedisStore, seconds: float) -> None:
    client, spent = store.client, int(seconds * 1000)
    for key in client.scan_iter(match=store.prefix + "*", count=500):
        left = client.pttl(key)
        if left is None or left < 0:  # no TTL (-1) or gone meanwhile (-2)
            continue
        if left > spent:
            client.pexpire(key, left - spent)
        else:
            client.delete(key)


@pytest.fixture
def clock():
    """The app's clock for this test: `clock.advance(seconds, app_or_store, ...)` lets time pass."""
    stepped = SteppedClock()
    previous = timeutil.use_clock(stepped)
    try:
        yield stepped
    finally:
        timeutil.use_clock(previous)
