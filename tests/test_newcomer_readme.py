"""The README followed the way a newcomer does, against live processes from this checkout:
`flask fakes all`, then `make run` on a free PORT with the fakes' variables (no PUBLIC_BASE_URL, no
Redis), then the "Try it" curl blocks pasted into bash. Checks that "serving on" comes only once
the server answers, that the in-process-store warning is printed once, and that the URLs the
app hands out (token and license issuers, the status list) carry the port."""
from __future__ import annotations

import base64
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.devtools.accounts import demo_password
from tests.support.newcomer import (FLASK, ROOT, as_script, background, json_helper, process_env, read_exports,
                                    try_it_blocks, wait_for_file_text)
from tests.support.procs import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ZHANG_SAN = "11010519491231002X"
REDIS_WARNING = "REDIS_URL is not set"


@dataclass
class Newcomer:
    base: str
    port: int
    env: dict
    run_log: Path
    directory: Path


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    directory = tmp_path_factory.mktemp("newcomer")
    port = free_port()
    env = process_env(directory, PORT=str(port))
    fakes_env = directory / "fakes.env"
    with background(FLASK + ["fakes", "all", "--port", "0", "--env-file", str(fakes_env)], env,
                    directory / "fakes.log") as fakes:
        wait_for_file_text(directory / "fakes.log", r"Ctrl-C", fakes, 180)
        env = {**env, **read_exports(fakes_env)}
        run_log = directory / "run.log"
        with background(["make", "-o", ".venv/.runtime", "run"], env, run_log) as run:
            wait_for_file_text(run_log, r"\n  registries ", run, 600)
            yield Newcomer(f"http://127.0.0.1:{port}", port, env, run_log, directory)


def bash(script: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_make_run_announces_once_the_server_answers(newcomer):
    log = newcomer.run_log.read_text()
    announced = log.index(f"serving on {newcomer.base}")
    assert log.index("Listening at") < announced
    assert re.search(r'"GET /healthz 200"', log[:announced]), "the announcer waited for /healthz"
    assert log.count(REDIS_WARNING) == 1, "one warning for migrate + seed + serve"
    block = log[announced:]
    password = demo_password(newcomer.env["SECRET_KEY"])
    assert f"password {password}" in block and "370102198605122341" in block
    for url in sorted(set(re.findall(r"http://127\.0\.0\.1:\d+/[^\s)]*", block))):
        response = requests.get(url, allow_redirects=False, timeout=30)
        assert response.status_code in (200, 302), (url, response.status_code)


def test_try_it_block_runs_and_urls_carry_the_port(newcomer):
    first = try_it_blocks()[0]
    result = bash(as_script(first, newcomer.base), newcomer.env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "户口簿" in out.splitlines()[0]
    assert "110105********002X" in out and ZHANG_SAN not in out
    assert '"valid":true' in out and '"disclosed":{"name":"张*"}' in out
    assert '"result":"valid"' in out  # the access log names the verification

    token = requests.post(f"{newcomer.base}/api/v1/auth/token", timeout=30, json={
        "grant_type": "password", "username": ZHANG_SAN,
        "password": demo_password(newcomer.env["SECRET_KEY"])}).json()["access_token"]
    assert claims(token)["iss"] == newcomer.base
    headers = {"Authorization": f"Bearer {token}"}
    license_id = requests.get(f"{newcomer.base}/api/v1/wallet/licenses", headers=headers,
                              timeout=30).json()["items"][0]["license_id"]
    offline = requests.post(f"{newcomer.base}/api/v1/wallet/licenses/{license_id}/presentations", headers=headers,
                            timeout=30, json={"disclose": ["name"], "purpose": "核对", "mode": "offline"}).json()
    credential = claims(offline["sd_jwt"].split("~")[0])
    assert credential["iss"].startswith(f"{newcomer.base}/issuers/")
    uri = credential["status"]["status_list"]["uri"]
    assert uri.startswith(f"{newcomer.base}/api/v1/status-lists/")
    status_list = requests.get(uri, timeout=30)
    assert status_list.status_code == 200
    assert status_list.headers["Content-Type"].startswith("application/statuslist+jwt")
    assert claims(status_list.text)["sub"] == uri


def test_mini_program_login_block_runs_against_the_fakes(newcomer):
    first, mini_program = try_it_blocks()[:2]
    result = bash(as_script(mini_program, newcomer.base, prelude=json_helper(first)), newcomer.env)
    assert result.returncode == 0, result.stdout + result.stderr
    bound, again = [line for line in result.stdout.splitlines() if line.count(".") == 2][-2:]
    assert claims(bound)["sub"] == claims(again)["sub"]
    assert claims(again)["channel"] == "wechat" and claims(again)["iss"] == newcomer.base
    profile = requests.get(f"{newcomer.base}/api/v1/me", headers={"Authorization": f"Bearer {again}"},
                           timeout=30).json()
    assert profile["name"] == "李四" and [b["channel"] for b in profile["bindings"]] == ["wechat"]
