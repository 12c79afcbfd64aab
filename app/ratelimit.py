"""Rate limits on top of the `limits` library, backed by Redis or process memory."""
from __future__ import annotations

import time
from functools import lru_cache

from limits import parse as parse_limit
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from .errors import TooManyRequests
from .store import SharedStore, StoreUnavailable


parse = lru_cache(maxsize=128)(parse_limit)  # "600/minute" is parsed once per worker


class RateLimiter:
    """Fixed-window limits keyed by a scope and an identifier (client IP, client id, phone)."""

    def __init__(self, redis_url: str | None, store: SharedStore):
        self.store = store
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

    def hit_and_read(self, limit: str, scope: str, identifier: str, keys: list[str], *,
                     detail: str | None = None) -> dict[str, str | None]:
        """`hit`, counted in the shared store in the same round trip as reading `keys` there (for a
        hot path whose every request reads the store anyway); returns {key: value}."""
        item = parse(limit)
        count, reset_in, values = self.store.count_and_get(f"ratelimit:{item.key_for(scope, identifier)}",
                                                           item.get_expiry(), keys)
        if count > item.amount:
            raise TooManyRequests(detail, retry_after=max(1, reset_in))
        return dict(zip(keys, values))

    def reset(self) -> None:
        """Clear all counters (tests)."""
        self.storage.reset()
