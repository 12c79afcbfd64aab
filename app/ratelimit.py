"""Fixed-window rate limits counted in the shared store (Redis, or process memory), with the
`limits` library's notation ("600/minute") and keys."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from limits import parse as parse_limit

from .errors import TooManyRequests
from .store import Claimed, SharedStore, UseClaim

parse = lru_cache(maxsize=128)(parse_limit)  # "600/minute" is parsed once per worker


@dataclass(frozen=True)
class Window:
    """One hit to count in a fixed window: the counter's key, the window's seconds and the hits it allows."""

    key: str
    seconds: int
    amount: int
    detail: str | None = None

    def check(self, count: int, reset_in: int) -> None:
        """TooManyRequests with Retry-After once `count` hits have passed the limit."""
        if count > self.amount:
            self.refuse(reset_in)

    def refuse(self, reset_in: int):
        """TooManyRequests for a hit past the limit, the window resetting in `reset_in` seconds."""
        raise TooManyRequests(self.detail, retry_after=reset_in + 1)


def window(limit: str, scope: str, identifier: str, *, detail: str | None = None) -> Window:
    """The window a hit of `identifier` under `limit` counts in (for a store step that counts it with its own work)."""
    item = parse(limit)
    return Window(f"ratelimit:{item.key_for(scope, identifier)}", item.get_expiry(), item.amount, detail)


class RateLimiter:
    """Fixed-window limits keyed by a scope and an identifier (client IP, client id, phone)."""

    def __init__(self, store: SharedStore):
        self.store = store

    def hit(self, limit: str, scope: str, identifier: str, *, detail: str | None = None) -> None:
        """Count one hit; raise TooManyRequests with Retry-After once the limit is passed."""
        self.hit_and_read(limit, scope, identifier, [], detail=detail)

    def hit_and_read(self, limit: str, scope: str, identifier: str, keys: list[str], *,
                     detail: str | None = None) -> dict[str, str | None]:
        """`hit`, in the same round trip as reading `keys` from the shared store (for a hot path
        whose every request reads the store anyway); returns {key: value}."""
        return self.count(window(limit, scope, identifier, detail=detail), keys)

    def count(self, counted: Window, keys: list[str] = ()) -> dict[str, str | None]:
        """`hit_and_read` for a window the caller already has."""
        count, reset_in, values = self.store.count_and_get(counted.key, counted.seconds, list(keys))
        counted.check(count, reset_in)
        return dict(zip(keys, values))

    def count_and_claim(self, counted: Window, keys: list[str], guards: int,
                        claim: UseClaim) -> tuple[dict[str, str | None], Claimed]:
        """`count`, and `claim` in the same round trip unless the hit passes the limit (then 429) or one of
        the first `guards` keys holds a value."""
        count, reset_in, values, claimed = self.store.count_get_and_claim(
            counted.key, counted.seconds, counted.amount, list(keys), guards, claim)
        counted.check(count, reset_in)
        return dict(zip(keys, values)), claimed
