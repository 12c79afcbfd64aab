"""Shared key-value store for what processes must share: Redis, or an in-process stand-in."""
from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod

import redis

from .errors import ServiceUnavailable

logger = logging.getLogger("app.store")


class StoreUnavailable(ServiceUnavailable):
    """The shared store cannot be reached; callers answer 503 instead of guessing."""

    def __init__(self, detail: str | None = None):
        super().__init__(detail or "共享存储暂不可用，请稍后重试", retry_after=5)


class SharedStore(ABC):
    """Operations every store offers; values are strings, TTLs are seconds."""

    name = "abstract"

    @abstractmethod
    def get(self, key: str) -> str | None: ...

    @abstractmethod
    def set(self, key: str, value: str, ttl: int | None = None) -> None: ...

    @abstractmethod
    def set_if_absent(self, key: str, value: str, ttl: int) -> bool: ...

    @abstractmethod
    def pop(self, key: str) -> str | None:
        """Atomically read and delete: the first caller wins."""

    @abstractmethod
    def delete(self, *keys: str) -> int: ...

    @abstractmethod
    def incr(self, key: str, ttl: int) -> int:
        """Increment; the TTL starts when the key is created."""

    @abstractmethod
    def ttl(self, key: str) -> int | None: ...

    @abstractmethod
    def ping(self) -> bool: ...

    @abstractmethod
    def flush(self) -> None:
        """Remove every key of this store's namespace (tests only)."""


class MemoryStore(SharedStore):
    """In-process store: correct for one process only."""

    name = "memory"

    def __init__(self):
        self._data: dict[str, tuple[str, float | None]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str):
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return item

    @staticmethod
    def _expiry(ttl):
        return time.monotonic() + ttl if ttl else None

    def get(self, key):
        with self._lock:
            item = self._live(key)
            return item[0] if item else None

    def set(self, key, value, ttl=None):
        with self._lock:
            self._data[key] = (str(value), self._expiry(ttl))

    def set_if_absent(self, key, value, ttl):
        with self._lock:
            if self._live(key):
                return False
            self._data[key] = (str(value), self._expiry(ttl))
            return True

    def pop(self, key):
        with self._lock:
            item = self._live(key)
            if item is None:
                return None
            del self._data[key]
            return item[0]

    def delete(self, *keys):
        with self._lock:
            return sum(1 for key in keys if self._live(key) and self._data.pop(key, None))

    def incr(self, key, ttl):
        with self._lock:
            item = self._live(key)
            if item is None:
                self._data[key] = ("1", self._expiry(ttl))
                return 1
            value = int(item[0]) + 1
            self._data[key] = (str(value), item[1])
            return value

    def ttl(self, key):
        with self._lock:
            item = self._live(key)
            if item is None or item[1] is None:
                return None
            return max(0, int(round(item[1] - time.monotonic())))

    def ping(self):
        return True

    def flush(self):
        with self._lock:
            self._data.clear()


class RedisStore(SharedStore):
    """Redis-backed store shared by every worker; connection errors become StoreUnavailable."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "ias:"):
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True,
            retry_on_timeout=False, health_check_interval=30)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            logger.warning("redis unavailable: %s", exc.__class__.__name__)
            raise StoreUnavailable() from exc

    def get(self, key):
        return self._call(self.client.get, self._k(key))

    def set(self, key, value, ttl=None):
        self._call(self.client.set, self._k(key), str(value), ex=ttl or None)

    def set_if_absent(self, key, value, ttl):
        return bool(self._call(self.client.set, self._k(key), str(value), ex=ttl, nx=True))

    def pop(self, key):
        return self._call(self.client.getdel, self._k(key))

    def delete(self, *keys):
        if not keys:
            return 0
        return int(self._call(self.client.delete, *[self._k(k) for k in keys]))

    def incr(self, key, ttl):
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(self._k(key))
        pipe.expire(self._k(key), ttl, nx=True)
        count, _ = self._call(pipe.execute)
        return int(count)

    def ttl(self, key):
        value = self._call(self.client.ttl, self._k(key))
        return None if value is None or value < 0 else int(value)

    def ping(self):
        try:
            return bool(self.client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def flush(self):
        cursor = 0
        while True:
            cursor, keys = self._call(self.client.scan, cursor, match=self.prefix + "*", count=500)
            if keys:
                self._call(self.client.delete, *keys)
            if cursor == 0:
                break


def build_store(redis_url: str | None) -> SharedStore:
    """Redis when configured, otherwise the in-process store with a warning."""
    if redis_url:
        return RedisStore(redis_url)
    logger.warning("REDIS_URL is not set: using the in-process store, which serves one process only")
    return MemoryStore()
