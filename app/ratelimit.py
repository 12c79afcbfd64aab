"""Rate limits on top of the `limits` library, backed by Redis or process memory."""
from __future__ import annotations

import time

from limits import parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from .errors import TooManyRequests
from .store import StoreUnavailable


class RateLimiter:
    """Fixed-window limits keyed by a scope and an identifier (client IP, client id, phone)."""

    def __init__(self, redis_url: str | None):
        if redis_url:
            storage = RedisStorage(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0,
                                   key_prefix="ias-limits", wrap_exceptions=True)
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.strategy = FixedWindowRateLimiter(storage)

    def hit(self, limit: str, scope: str, identifier: str, *, detail: str | None = None) -> None:
        """Count one hit; raise TooManyRequests with Retry-After once the limit is passed."""
        item = parse(limit)
        try:
            allowed = self.strategy.hit(item, scope, identifier)
            if allowed:
                return
            reset = self.strategy.get_window_stats(item, scope, identifier).reset_time
        except (StorageError, RedisError, OSError) as exc:
            raise StoreUnavailable() from exc
        raise TooManyRequests(detail, retry_after=int(reset - time.time()) + 1)

    def reset(self) -> None:
        """Clear all counters (tests)."""
        self.storage.reset()
