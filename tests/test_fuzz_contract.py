"""Contract fuzzing: schemathesis generates requests from our own /openapi.json and checks the
answers against it, in-process, on an app of its own (own database and Redis db, so the fuzzer's
writes never reach the rest of the suite).

For every documented operation, deterministic (derandomized) and bounded examples:
- positive and negative (schema-violating) data, as the operation's usual caller (citizen, hall
  admin, issuer, verifier) with generated path parameters and with the ids of real objects;
- a few positive examples as each other caller and anonymously;
checks: no 500 (and no other 5xx unless the operation documents it), status codes documented
(2xx/3xx explicitly), content types, response schemas and headers as documented, negative data
rejected with a 4xx, and every error an RFC 9457 problem with the contract's headers.
Then every documented path answers an undocumented method with 405 problem+json and `Allow`.

Findings are reproduced as plain tests at the bottom of this file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from tests.support.procs import app_config, dispose, prepare_database, random_secrets
from tests.support.world import PROBLEM, World, build_world, is_problem, main_role, real_path_parameters

API = "/api/v1"
ROLES = ("citizen", "hall_admin", "issuer", "anonymous")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))  # per operation, mode and path choice
OTHER_ROLE_EXAMPLES = 2
FUZZ_REDIS_DB = 7
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# ------------------------------------------------------------------------------- checks


def _documented(case) -> set[str]:
    return {str(code) for code in case.operation.responses.status_codes}


def no_server_error(ctx, response, case):
    """500 never; 502/503 only where the operation documents them (upstreams, readiness)."""
    status = response.status_code
    if status == 500 or (status >= 500 and str(status) not in _documented(case)):
        raise AssertionError(f"server error {status}: {response.text[:300]}")


def success_status_documented(ctx, response, case):
    """Error statuses fall under `default` (problem details); successes must be named."""
    status = response.status_code
    if status < 400 and str(status) not in _documented(case):
        raise AssertionError(f"undocumented success status {status}; documented: {sorted(_documented(case))}")


def problem_details(ctx, response, case):
    """Every 4xx/5xx: problem+json with type, title, status (= the HTTP status) and detail."""
    status = response.status_code
    if status < 400 or case.path == "/readyz":
        return
    content_type = (response.headers.get("content-type") or [""])[0].split(";")[0]
    if content_type != PROBLEM:
        raise AssertionError(f"{status} with content type {content_type!r}, not {PROBLEM}")
    body = response.json()
    missing = {"type", "title", "status", "detail"} - set(body)
    if missing or body["status"] != status:
        raise AssertionError(f"problem body incomplete ({sorted(missing)}) or status {body.get('status')} != {status}")
    if status in (423, 429) and not response.headers.get("retry-after"):
        raise AssertionError(f"{status} without Retry-After")
    if status == 405 and not response.headers.get("allow"):
        raise AssertionError("405 without Allow")


CHECKS = [no_server_error, success_status_documented, problem_details,
          openapi_checks.status_code_conformance, openapi_checks.content_type_conformance,
          openapi_checks.response_schema_conformance, openapi_checks.response_headers_conformance]
NEGATIVE_CHECKS = CHECKS + [openapi_checks.negative_data_rejection]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fuzz_app():
    """An app with its own database (SQLite file, or a database of its own on the suite's PostgreSQL)
    and its own Redis database number, tables and reference data created."""
    directory = tempfile.mkdtemp(prefix="ias-fuzz-")
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    pg_admin = None
    if database_url:
        import psycopg
        parts = urlsplit(database_url.replace("+psycopg", ""))
        pg_admin = f"{parts.scheme}://{parts.netloc}/postgres"
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "ias_fuzz"')
            conn.execute('CREATE DATABASE "ias_fuzz"')
        database_url = database_url.rsplit("/", 1)[0] + "/ias_fuzz"
    else:
        database_url = "sqlite:///" + os.path.join(directory, "fuzz.db")
    if redis_url:
        redis_url = redis_url.rsplit("/", 1)[0] + f"/{FUZZ_REDIS_DB}"
        _flush_redis_db(redis_url)
    # real (unreachable) upstreams so that mini-program operations reach their 502/503 paths
    application = prepare_database(app_config(
        database_url, redis_url, random_secrets(),
        WECHAT_APP_ID="wx_fuzz", WECHAT_APP_SECRET="fuzz-secret", WECHAT_API_BASE="http://127.0.0.1:9",
        ALIPAY_GATEWAY="http://127.0.0.1:9/gateway.do", MINIPROGRAM_HTTP_TIMEOUT=0.5))
    try:
        yield application
    finally:
        dispose(application)
        shutil.rmtree(directory, ignore_errors=True)
        if redis_url:
            _flush_redis_db(redis_url)
        if pg_admin:
            import psycopg
            with psycopg.connect(pg_admin, autocommit=True) as conn:
                conn.execute('DROP DATABASE IF EXISTS "ias_fuzz" WITH (FORCE)')


def _flush_redis_db(url: str) -> None:
    import redis
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="module")
def world(fuzz_app) -> World:
    return build_world(fuzz_app, fuzz_app.test_client(), sacrificial_service=True)


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)


def _operations(schema, tag: str | None = None):
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tags = operation.definition.raw.get("tags") or ["untagged"]
        if tag is None or tags[0] == tag:
            found.append(operation)
    return found


class Fuzzer:
    """Runs bounded, derandomized hypothesis searches per operation and collects the failures."""

    def __init__(self, app, world: World):
        self.app = app
        self.world = world
        self.failures: list[str] = []
        self.cases = 0
        self.statuses: dict[str, Counter] = defaultdict(Counter)

    def headers_for(self, role: str) -> dict | None:
        if role == "throwaway":  # logout revokes the token it is called with
            from tests.support.helpers import login
            person = self.world.bob
            return {"Authorization": "Bearer " + login(self.app.test_client(), person["id_number"],
                                                       person["password"])["access_token"]}
        if role == "anonymous":
            return None  # whatever the generator sends (nothing, or a random bearer token)
        return self.world.headers(role)

    def run(self, operation, *, mode: GenerationMode, role: str, path_parameters: dict | None, examples: int):
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)
        checks = NEGATIVE_CHECKS if mode == GenerationMode.NEGATIVE else CHECKS

        @given(case=strategy)
        @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
                  report_multiple_bugs=False)
        def search(case):
            headers = self.headers_for(role)
            if headers is not None:
                case.headers = {**{k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"},
                                **headers}
            self.cases += 1
            response = case.call()
            self.statuses[operation.label][response.status_code] += 1
            case.validate_response(response, checks=checks)

        try:
            search()
        except Unsatisfiable:
            pass  # e.g. no negative variant of an operation without inputs
        except BaseException as exc:  # noqa: BLE001 - schemathesis failures are exception groups
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.failures.append(f"{operation.label} [{mode.value}, {role}, "
                                 f"{'real ids' if path_parameters else 'generated ids'}]\n{exc}"[:3000])

    def fuzz(self, operation):
        label = operation.label
        role = main_role(label)
        real = real_path_parameters(operation.path, self.world.ids) if "{" in operation.path else {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            self.run(operation, mode=mode, role=role, path_parameters=None, examples=EXAMPLES)
            if real:
                self.run(operation, mode=mode, role=role, path_parameters=real, examples=EXAMPLES)
        for other in ROLES:
            if other != role and (role != "throwaway" or other == "anonymous"):
                self.run(operation, mode=GenerationMode.POSITIVE, role=other, path_parameters=real or None,
                         examples=OTHER_ROLE_EXAMPLES)


TAGS = ("ops", "identity", "accounts", "catalogue", "wallet", "applications", "evaluations", "notifications", "miniprograms",
        "开放平台", "appointments", "complaints", "service_points", "oidc", "files", "results", "hall_desk")


def test_every_operation_is_in_a_fuzzed_tag(api_schema):
    tags = {(op.definition.raw.get("tags") or ["untagged"])[0] for op in _operations(api_schema)}
    assert tags <= set(TAGS), tags - set(TAGS)


@pytest.mark.parametrize("tag", TAGS)
def test_operations_conform_to_the_contract(fuzz_app, world, api_schema, tag):
    operations = _operations(api_schema, tag)
    assert operations, f"no operation tagged {tag}"
    fuzzer = Fuzzer(fuzz_app, world)
    started = time.monotonic()
    for operation in operations:
        fuzzer.fuzz(operation)
    client = fuzz_app.test_client()
    for role in ("citizen", "hall_admin", "issuer", "verifier"):  # the fuzzer must not have logged them out
        assert client.get(f"{API}/wallet/licenses", headers=world.headers(role)).status_code in (200, 403), role
    print(f"{tag}: {len(operations)} operations, {fuzzer.cases} cases in {time.monotonic() - started:.1f}s")
    for label, counts in fuzzer.statuses.items():
        print(f"  {label}: {dict(sorted(counts.items()))}")
    assert fuzzer.cases >= len(operations) * 2
    assert not fuzzer.failures, (f"{len(fuzzer.failures)} failing searches in {time.monotonic() - started:.0f}s:\n\n"
                                 + "\n\n".join(fuzzer.failures))


def test_undocumented_methods_answer_405_with_allow(fuzz_app, world, api_schema):
    """Every documented path, every method it does not document: 405 problem+json, Allow = documented."""
    client = fuzz_app.test_client()
    spec = client.get("/openapi.json").get_json()
    problems = []
    for template, item in spec["paths"].items():
        documented = {m.upper() for m in item if m.upper() in METHODS}
        path = template
        for name, value in real_path_parameters(template, world.ids).items():
            path = path.replace("{" + name + "}", value)
        for method in METHODS:
            if method in documented:
                continue
            response = client.open(path, method=method, headers=world.alice["headers"], json={})
            allow = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
            if response.status_code != 405 or not is_problem(response, 405):
                problems.append(f"{method} {path}: {response.status_code} {response.mimetype}")
            elif allow - {"HEAD", "OPTIONS"} != documented:
                problems.append(f"{method} {path}: Allow {sorted(allow)} but documented {sorted(documented)}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ regressions of findings


def test_error_responses_are_documented_as_problem_json(fuzz_app):
    """Finding: every error response was documented as application/json while served as
    application/problem+json (content-type conformance failed on every 4xx)."""
    spec = fuzz_app.test_client().get("/openapi.json").get_json()
    assert set(spec["components"]["responses"]["DEFAULT_ERROR"]["content"]) == {PROBLEM}
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            if method.upper() not in METHODS:
                continue
            for status, response in operation.get("responses", {}).items():
                content = response.get("content") or {}
                schema = (content.get("application/json") or {}).get("schema") or {}
                assert schema.get("$ref") != "#/components/schemas/Problem", (method, template, status)
                if status != "default" and int(status) >= 400 and template != "/readyz":
                    assert set(content) in (set(), {PROBLEM}), (method, template, status, set(content))


def test_problem_extension_members_are_allowed_by_the_schema(fuzz_app, world):
    """Finding: the Problem schema forbade additional properties, but problems carry RFC 9457
    extension members (`license_status`, `existing_code`, `version`...)."""
    spec = fuzz_app.test_client().get("/openapi.json").get_json()
    assert spec["components"]["schemas"]["Problem"].get("additionalProperties") is not False


def test_a_refused_transition_keeps_the_problem_status_numeric(client, app):
    """Finding: the 409 of an illegal transition put the application's status into the problem's
    `status` member ("status": "accepted"), which RFC 9457 reserves for the HTTP status code."""
    from tests.support.helpers import create_staff
    from tests.support.applications import apply, hukou_body, person_in
    alice = person_in(client, app)
    submitted = apply(client, alice["headers"], hukou_body(alice, app)).get_json()
    admin = create_staff(app, "370102", "hall_admin")
    response = client.post(f"{API}/applications/{submitted['application_id']}/transitions", headers=admin,
                           json={"action": "approve", "comment": "x"})
    assert response.status_code == 409 and is_problem(response, 409)
    body = response.get_json()
    assert body["status"] == 409 and body["application_status"] == "submitted"


def test_inbox_times_are_rfc3339_with_a_zone(client, app):
    """Finding: inbox `created_at` was a naive timestamp on SQLite ("2026-11-21T02:06:50.500937"),
    not the documented date-time (RFC 3339 needs the offset)."""
    from tests.support.applications import apply, hukou_body, person_in
    alice = person_in(client, app)
    assert apply(client, alice["headers"], hukou_body(alice, app)).status_code == 201
    items = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert items
    for item in items:
        assert item["created_at"].endswith(("Z", "+00:00")), item["created_at"]


@pytest.mark.parametrize("method, url, body, status", [
    ("GET", f"{API}/bundles/enterprise-opening?hall=37%000102", None, 422),
    ("GET", f"{API}/services?q=%E8%90%A5%00&hall=370102", None, 422),
    ("GET", f"{API}/halls/3701%0002", None, 404),
    ("POST", f"{API}/auth/register", {"id_number": "370102199001011234", "name": "张\u0000三",
                                      "phone": "13800000000", "password": "Passw0rd2025"}, 422),
    ("POST", f"{API}/auth/token", {"grant_type": "password", "username": "3701\u0000", "password": "x"}, 422),
    ("POST", f"{API}/verifications", {"code": "abc\u0000def"}, 422),
])
def test_nul_characters_are_refused_before_they_reach_the_database(client, method, url, body, status):
    """Finding (PostgreSQL only): `GET /bundles/{code}?hall=` with U+0000 was a 500, PostgreSQL
    refusing NUL in text. Every NUL in a path, query or JSON body is now refused up front."""
    response = client.open(url, method=method, json=body)
    assert response.status_code == status and is_problem(response, status), response.get_json()
    if status == 422:
        assert all(messages == ["不能包含空字符（U+0000）"] for messages in response.get_json()["errors"].values())
