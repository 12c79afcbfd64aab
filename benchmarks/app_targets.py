"""The application's load rows on the seeded-catalogue server (`AppTargets`, one method per row, with the
holder and licenses they share built on first use), and the search row that both servers measure."""
from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import quote

from . import bench_device, bench_hall_services, bench_personal
from .harness import BUSY_VERIFICATIONS, LoadRunner, Settings
from .loadgen import LUA_DIR, GunicornServer, HttpClient, log, run_wrk
from .setup_data import (API, Deployment, SetupSkipped, bearer, client_token, create_holder, create_presentations,
                         issue_licenses, json_line, login, mint_refresh_tokens, service_codes, write_lines)


class AppTargets:
    """The application targets on one server (seeded ~2k catalogue) and their lazily built fixtures."""

    def __init__(self, runner: LoadRunner, dep: Deployment, server: GunicornServer, data_dir: Path):
        self.runner, self.dep, self.server, self.data_dir = runner, dep, server, data_dir
        self.api = HttpClient(server.base_url)
        self._holder = None
        self._licenses: tuple[list[dict], str] | None = None

    @property
    def settings(self) -> Settings:
        return self.runner.settings

    def holder(self):
        if self._holder is None:
            self._holder = create_holder(self.dep, self.api, seed=int(time.time()) % 100_000)
        return self._holder

    def holder_token(self) -> str:
        return login(self.api, self.holder().id_number)["access_token"]

    def licenses(self) -> list[dict]:
        if self._licenses is None:
            self._licenses = issue_licenses(self.api, self.dep, self.holder())
            log(f"  issued {len(self._licenses[0])} licenses to the holder: "
                + ", ".join(t["name"] for t in self._licenses[0]))
        return self._licenses[0]

    def run(self, name: str) -> None:
        getattr(self, "t_" + name)()

    def t_healthz(self) -> None:
        self.runner.measure("healthz", "GET /healthz", self.server.url("/healthz"), server=self.server)

    def t_search_seeded(self) -> None:
        search_target(self.runner, "search_seeded", self.server, self.api, self.dep)

    def t_detail(self) -> None:
        codes = service_codes(self.api, limit=200)
        status, body = self.api.request("GET", f"{API}/services/{quote(codes[0])}")
        if status != 200:
            raise SetupSkipped(f"GET /api/v1/services/{{code}} answers {status} for a listed code "
                               f"({'not built yet' if status == 404 else str(body)[:150]})")
        paths = write_lines(self.data_dir / "detail_paths.txt", [f"{API}/services/{quote(c)}" for c in codes])
        self.runner.measure("detail", "GET /api/v1/services/{code}", self.server.base_url, script="paths.lua",
                            script_args=[str(paths)], server=self.server,
                            notes=[f"rotating {len(codes)} service codes"])

    def t_home_catalogue(self) -> None:
        """What the app's home screen and city picker ask without a token: the hall tree, a city's hall, the
        topics, the bundles and one bundle resolved for a hall, each rendered once per catalogue version."""
        status, body = self.api.request("GET", f"{API}/bundles")
        if status != 200 or not body.get("items"):
            raise SetupSkipped(f"GET /api/v1/bundles answers {status}: {str(body)[:150]}")
        bundle = quote(body["items"][0]["code"])
        paths = [f"{API}/halls", f"{API}/halls/370100", f"{API}/topics", f"{API}/bundles",
                 f"{API}/bundles/{bundle}?hall=370102"]
        path_file = write_lines(self.data_dir / "home_catalogue_paths.txt", paths)
        self.runner.measure("home_catalogue", "GET /api/v1/halls, /halls/{code}, /topics, /bundles, /bundles/{code}",
                            self.server.base_url, script="paths.lua", script_args=[str(path_file)], server=self.server,
                            notes=["the five reads in turn, anonymous"])

    def t_catalogue_signed_in(self) -> None:
        """The app's searches and service details as a signed-in person asks them: with their access token,
        which decides the channel they see (search.lua's 20 queries and 20 listed codes, in turn)."""
        token = self.holder_token()
        codes = service_codes(self.api, limit=20)
        searches = [f"{API}/services?q={quote(q)}&page_size=20" for q in search_lua_queries()]
        paths = [path for pair in zip(searches, (f"{API}/services/{quote(c)}" for c in codes)) for path in pair]
        for path in paths:
            status, body = self.api.request("GET", path, headers=bearer(token))
            if status != 200:
                raise SetupSkipped(f"GET {path} with a token answers {status}: {str(body)[:150]}")
        path_file = write_lines(self.data_dir / "catalogue_signed_in_paths.txt", paths)
        self.runner.measure("catalogue_signed_in", "GET /api/v1/services?q=..., /services/{code} (person token)",
                            self.server.base_url, script="paths.lua", script_args=[str(path_file)],
                            headers=[f"Authorization: Bearer {token}"], server=self.server,
                            notes=[f"{len(searches)} searches and {len(codes)} service details in turn, each asked "
                                   "before the run (rendered at the catalogue version served)"])

    def t_wallet(self) -> None:
        """The holder opens their wallet (no query arguments): after the first opening, the page kept
        for the current version of their wallet (app/wallet/page_cache.py)."""
        self._wallet_row("wallet", "", "the page kept in Redis: no database statement")

    def t_wallet_read(self) -> None:
        """The same first page asked with explicit arguments: never kept, one database read each time."""
        self._wallet_row("wallet_read", "?page=1&page_size=20", "explicit arguments: one PostgreSQL read each time")

    def _wallet_row(self, name: str, query: str, how: str) -> None:
        token = self.holder_token()
        status, body = self.api.request("GET", f"{API}/wallet/licenses", headers=bearer(token))
        if status == 404:
            raise SetupSkipped("GET /api/v1/wallet/licenses answers 404 (wallet endpoints not built yet)")
        licenses = self.licenses()
        status, body = self.api.request("GET", f"{API}/wallet/licenses{query}", headers=bearer(token))
        listed = len(body.get("items", [])) if isinstance(body, dict) else None
        if status != 200:
            raise SetupSkipped(f"GET /api/v1/wallet/licenses answers {status}: {str(body)[:200]}")
        paths = write_lines(self.data_dir / f"{name}_paths.txt", [f"{API}/wallet/licenses{query}"])
        self.runner.measure(name, f"GET /api/v1/wallet/licenses{query} (holder token)", self.server.base_url,
                            script="paths.lua", script_args=[str(paths)],
                            headers=[f"Authorization: Bearer {token}"], server=self.server,
                            notes=[f"holder with {listed if listed is not None else len(licenses)} licenses; {how}"])

    def t_applications(self) -> None:
        """A person with a few applications (instant approvals: each also leaves inbox messages)."""
        token = self.holder_token()
        listed = bench_personal.ensure_applications(self, token)
        self._personal_row("applications", "/applications", token,
                           f"person with {listed} applications; the page kept in Redis after the first opening")

    def t_inbox(self) -> None:
        token = self.holder_token()
        listed = bench_personal.ensure_inbox(self, token)
        self._personal_row("inbox", "/inbox", token, f"person with {listed} messages in the inbox; the page kept in "
                           "Redis after the first opening (the journal caught up with first)")

    def t_inbox_busy(self) -> None:
        """The inbox while another holder's codes are verified: their answers wait in the journal for the
        drainer, as they do all day in production."""
        s, token = self.settings, self.holder_token()
        listed = bench_personal.ensure_inbox(self, token)
        other = create_holder(self.dep, self.api, seed=(int(time.time()) + 7) % 100_000, name="王芳")
        other_licenses, _ = issue_licenses(self.api, self.dep, other)
        wanted = int(BUSY_VERIFICATIONS * (s.warmup + s.duration + 10))
        codes = create_presentations(self.server.base_url, login(self.api, other.id_number)["access_token"],
                                     other_licenses, wanted)
        with bench_personal.verifying(self.server.base_url, codes, BUSY_VERIFICATIONS) as counts:
            row = self._personal_row("inbox_busy", "/inbox", token, f"person with {listed} messages in the inbox; "
                                     f"another holder's codes verified at {BUSY_VERIFICATIONS:.0f}/s meanwhile")
        row["notes"].append(f"{counts['valid']} background verifications valid, {counts['other']} otherwise")
        log(f"  inbox_busy: {counts['valid']} background verifications valid, {counts['other']} otherwise")

    def _personal_row(self, name: str, path: str, token: str, note: str) -> dict:
        paths = write_lines(self.data_dir / f"{name}_paths.txt", [f"{API}{path}"])
        return self.runner.measure(name, f"GET /api/v1{path} (holder token)", self.server.base_url,
                                   script="paths.lua", script_args=[str(paths)],
                                   headers=[f"Authorization: Bearer {token}"], server=self.server, notes=[note])

    def t_refresh(self) -> None:
        """Single-use refresh tokens, minted in-process: a calibration pool first, then what warm-up and
        the measured run need at five times the calibrated rate (at most `refresh_pool`): a one-second
        calibration of a cold server has read a third of the warm rate (1,070/s, then 3,223/s)."""
        s = self.settings
        url, threads, expect = self.server.url(f"{API}/auth/token"), str(s.wrk_threads), '"access_token"'
        t0 = time.monotonic()
        tokens = mint_refresh_tokens(self.dep, self.holder(), 600)
        status, body = self.api.request("POST", f"{API}/auth/token",
                                        {"grant_type": "refresh_token", "refresh_token": tokens.pop()})
        if status != 200:
            raise SetupSkipped(f"refresh grant answers {status}: {str(body)[:200]}")

        def bodies(batch: list[str]) -> list[str]:
            return [json_line({"grant_type": "refresh_token", "refresh_token": t}) for t in batch]

        calib = write_lines(self.data_dir / "refresh_calibration.txt", bodies(tokens))
        probe = run_wrk(url, duration=1, connections=s.connections, threads=s.wrk_threads, script="onetime.lua",
                        script_args=[str(calib), threads, expect])
        rate = max(probe.rps, 20.0)
        warm_n = int(rate * s.warmup * 5) + 20
        main_n = min(s.refresh_pool, int(rate * s.duration * 5) + 100)
        fresh = bodies(mint_refresh_tokens(self.dep, self.holder(), warm_n + main_n))
        log(f"  refresh: calibration {probe.rps:.0f}/s -> {len(fresh)} fresh tokens ({warm_n} warm-up) "
            f"minted in {time.monotonic() - t0:.0f}s")
        warm = write_lines(self.data_dir / "refresh_warm.txt", fresh[:warm_n])
        main = write_lines(self.data_dir / "refresh_main.txt", fresh[warm_n:])
        self.runner.measure("refresh", "POST /api/v1/auth/token grant_type=refresh_token", url,
                            script="onetime.lua", script_args=[str(main), threads, expect],
                            warm_args=[str(warm), threads, expect], server=self.server,
                            notes=[f"each request rotates a different single-use refresh token "
                                   f"({main_n} in the measured pool, sized from a {probe.rps:.0f}/s calibration run)"])

    def t_verification(self) -> None:
        """One-time codes live 300 s, so the pool is sized from a calibration run instead of made huge:
        create a few hundred, measure the verification rate for 1 s, then create what warm-up and the
        measured run need at three times that rate (a one-second calibration of a cold server has read less
        than half the warm rate), all within 150 s of the first code."""
        s = self.settings
        missing = self.api.request("POST", f"{API}/verifications", {"code": "00000000"})
        if missing[0] == 404:
            raise SetupSkipped("POST /api/v1/verifications answers 404 (verification not built yet)")
        licenses = self.licenses()
        verifier = client_token(self.dep, self.api, "verifier")
        holder_token = self.holder_token()
        url, threads, expect = self.server.url(f"{API}/verifications"), str(s.wrk_threads), '"valid"%s*:%s*true'
        wrk_common = dict(connections=s.connections, threads=s.wrk_threads, script="onetime.lua",
                          headers=[f"Authorization: Bearer {verifier}"])
        budget_s, t0 = 150.0, time.monotonic()

        def create(count: int) -> list[str]:
            left = budget_s - (time.monotonic() - t0)
            if left < 5:
                return []
            return create_presentations(self.server.base_url, holder_token, licenses, count, deadline_s=left)

        calibration = create(300)
        status, body = self.api.request("POST", f"{API}/verifications", {"code": calibration.pop()},
                                        bearer(verifier))
        if status != 200 or not (isinstance(body, dict) and body.get("valid") is True):
            raise SetupSkipped(f"verification of a fresh code answers {status}: {str(body)[:200]}")
        create_rate = len(calibration) / max(0.001, time.monotonic() - t0)
        calib_file = write_lines(self.data_dir / "verify_calibration.txt", [json_line({"code": c}) for c in calibration])
        probe = run_wrk(url, duration=1, script_args=[str(calib_file), threads, expect], **wrk_common)
        rate = max(probe.rps, 20.0)
        warm_n = int(rate * s.warmup * 3) + 20
        main_n = min(s.verification_pool, int(rate * s.duration * 3) + 100)
        codes = create(warm_n + main_n)
        # when the budget made fewer, the measured pool comes first: a warm-up that runs out only re-sends
        # bodies (answered `used`), a measured run that does is no longer first-use
        warm_n = min(warm_n, max(int(rate * s.warmup) + 20, len(codes) - main_n))
        created_s = time.monotonic() - t0
        log(f"  presentations: {create_rate:.0f}/s created through the API; calibration {probe.rps:.0f} "
            f"verifications/s -> {len(codes)} fresh codes ({warm_n} warm-up) after {created_s:.0f}s")
        if len(codes) < warm_n + 50:
            raise SetupSkipped(f"only {len(codes)} presentations could be created within {budget_s:.0f}s "
                               f"({create_rate:.0f}/s); the codes would expire before the run ends")
        bodies = [json_line({"code": c}) for c in codes]
        warm = write_lines(self.data_dir / "verify_warm.txt", bodies[:warm_n])
        main = write_lines(self.data_dir / "verify_main.txt", bodies[warm_n:])
        self.runner.measure("verification", "POST /api/v1/verifications {code} (verifier token)", url,
                            script="onetime.lua", script_args=[str(main), threads, expect],
                            warm_args=[str(warm), threads, expect], headers=wrk_common["headers"],
                            server=self.server,
                            notes=[f"first use of each one-time code ({len(bodies) - warm_n} fresh codes over "
                                   f"{len(licenses)} licenses, sized from a {probe.rps:.0f}/s calibration run)"])
        row = self.runner.results["load"].get("verification")
        if row is not None:
            row["notes"].append(journal_backlog(self.dep))

    def t_device_verification(self) -> None:
        bench_device.device_verification(self)

    def t_appointment_slots(self) -> None:
        bench_hall_services.slot_listing(self)

    def t_appointment_booking(self) -> None:
        bench_hall_services.booking(self)

    def close(self) -> None:
        self.api.close()



def journal_backlog(dep: Deployment, timeout_s: float = 300.0) -> str:
    """How far the journal writer (the access log, inbox and audit entries of each verification,
    written behind the answers by `flask worker`) was behind when the load stopped."""
    from app.journal import JOURNAL
    from app.redis_store import RedisStore
    store = RedisStore(dep.redis_url)  # the app's store: same key prefix and lists
    journals = store.journal_lists(JOURNAL)
    t0 = time.monotonic()
    pending = sum(store.journal_lengths(journals))
    while sum(store.journal_lengths(journals)) and time.monotonic() - t0 < timeout_s:
        time.sleep(0.1)
    left = sum(store.journal_lengths(journals))
    store.client.close()
    if left:
        return f"journal writer behind: {pending} entries pending when the load stopped, {left} still after {timeout_s:.0f}s"
    return (f"journal writer kept up: {pending} entries pending when the load stopped, all written to PostgreSQL "
            f"{time.monotonic() - t0:.1f}s later")


def search_lua_queries() -> list[str]:
    """The queries `benchmarks/lua/search.lua` rotates (its `queries` table), so the rows that search ask the same."""
    script = (LUA_DIR / "search.lua").read_text(encoding="utf-8")
    return re.findall(r'"([^"]+)"', re.search(r"local queries = \{(.*?)\}", script, re.S).group(1))


def search_target(runner: LoadRunner, name: str, server: GunicornServer, api: HttpClient, dep: Deployment) -> None:
    # warm first: the first search in each worker may build the whole index
    warm_s = server.warm_workers(f"{API}/services?q={quote('身份证')}&page_size=20")
    status, body = api.request("GET", f"{API}/services?q={quote('医保报销')}&page_size=20")
    if status == 404:
        raise SetupSkipped("GET /api/v1/services answers 404 (catalogue search not built yet)")
    if status != 200:
        raise SetupSkipped(f"GET /api/v1/services?q= answers {status}: {str(body)[:200]}")
    catalogue = _catalogue_size(dep)
    runner.results.setdefault("catalogues", {})[name] = catalogue
    runner.measure(name, "GET /api/v1/services?q=... (20 queries rotating)", server.url(f"{API}/services"),
                   script="search.lua", server=server,
                   notes=[f"catalogue of {catalogue:,} services" if catalogue else "catalogue size unknown",
                          f"first searches answered by every worker after {warm_s:.1f}s"])


def _catalogue_size(dep: Deployment) -> int:
    """Services in the deployment's catalogue (a search without a hall lists each item once, so the
    API's total counts items, not services)."""
    from sqlalchemy import func, select

    from app.catalogue.models import Service
    from app.extensions import db
    with dep.app().app_context():
        return db.session.scalar(select(func.count()).select_from(Service))

