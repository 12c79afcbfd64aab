"""The ceiling rows, served by the floor app (`benchmarks/floor_app.py`): the least work of an online
verification, a personal list and a token refresh in this stack, measured beside the app's rows."""
from __future__ import annotations

from pathlib import Path

from .harness import LoadRunner
from .loadgen import GunicornServer
from .setup_data import json_line, write_lines

CEILING_RATE = 6000  # per second, what a ceiling's one-time pool is sized for (a fast machine ran out at 4,000)


def _pool_size(runner: LoadRunner) -> int:
    """How many one-time bodies a ceiling row prepares: warm-up and measured run at CEILING_RATE, and a margin."""
    return int(CEILING_RATE * (runner.settings.warmup + runner.settings.duration)) + 1000


def _warm_size(runner: LoadRunner) -> int:
    return int(CEILING_RATE * runner.settings.warmup)


def _one_time_ceiling(runner: LoadRunner, floor: GunicornServer, data_dir: Path, name: str, request: str, path: str,
                      bodies: list[str], expect: str, notes: list[str]) -> None:
    """A ceiling row of one-time requests: `bodies` split into a warm-up pool (`_warm_size`) and the measured
    one, each body sent once."""
    warm_n = _warm_size(runner)
    warm = write_lines(data_dir / f"{name}_warm.txt", bodies[:warm_n])
    main = write_lines(data_dir / f"{name}_main.txt", bodies[warm_n:])
    threads = str(runner.settings.wrk_threads)
    runner.measure(name, request, floor.url(path), script="onetime.lua", script_args=[str(main), threads, expect],
                   warm_args=[str(warm), threads, expect], server=floor, notes=notes)


def verification_floor(runner: LoadRunner, floor: GunicornServer, redis_url: str, data_dir: Path) -> None:
    """The ceiling row: one-time codes sealed by `floor_verification.prepare`, verified by the floor
    app with the least work any online verification does (sized for CEILING_RATE verifications/s)."""
    from .floor_verification import prepare
    codes = prepare(redis_url, _pool_size(runner))
    _one_time_ceiling(runner, floor, data_dir, "verification_floor", "POST /verifications {code} (floor app before "
                      "Flask: Redis read, AES-GCM, status and times, Lua consume + journal)", "/verifications",
                      [json_line({"code": code}) for code in codes], '"valid"%s*:%s*true',
                      ["no token, rate limit, metrics, access log, schemas or database writer: the least any "
                       "implementation of the online verification does per request in this stack"])


def daily_floor(runner: LoadRunner, floor: GunicornServer, env: dict[str, str], data_dir: Path) -> None:
    """The ceiling row of the personal lists: `floor_daily.prepare`'s holder reads their wallet page."""
    from .floor_daily import prepare
    token = prepare(env["FLOOR_REDIS_URL"], env["FLOOR_DATABASE_URL"])
    paths = write_lines(data_dir / "floor_wallet_paths.txt", ["/wallet/licenses"])
    runner.measure("daily_floor", "GET /wallet/licenses (floor app before Flask: ES256 token, Redis "
                   "revocation read, one PostgreSQL statement, JSON)", floor.base_url, script="paths.lua", script_args=[str(paths)],
                   headers=[f"Authorization: Bearer {token}"], server=floor,
                   notes=["holder with 3 licenses among 60,000; no rate limit, metrics, access log, schemas or ORM: "
                          "the least any implementation of a personal list does per request in this stack"])


def refresh_floor(runner: LoadRunner, floor: GunicornServer, env: dict[str, str], data_dir: Path) -> None:
    """The ceiling row of the refresh: `floor_refresh.prepare`'s single-use tokens (sized for CEILING_RATE refreshes/s)."""
    from .floor_refresh import prepare
    tokens = prepare(env["FLOOR_REDIS_URL"], env["FLOOR_DATABASE_URL"], _pool_size(runner))
    measured = len(tokens) - _warm_size(runner)
    _one_time_ceiling(runner, floor, data_dir, "refresh_floor", "POST /auth/token grant_type=refresh_token (floor "
                      "app before Flask: one Redis Lua call that counts the address, rotates the held session and "
                      "journals it; ES256 signature, JSON)",
                      "/auth/token", [json_line({"grant_type": "refresh_token", "refresh_token": t}) for t in tokens],
                      '"access_token"',
                      [f"each request rotates a different single-use refresh token ({measured} in the measured pool); "
                       "no metrics, access log, schemas, audit, ORM or write-behind: the least a refresh of a "
                       "session held in Redis does per request in this stack"])

