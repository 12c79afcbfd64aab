"""Support for the newcomer tests (no tests here): the app's own commands as separate processes
in their own process groups, on a temporary SQLite database, and the README's "Try it" blocks."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import random_secrets

ROOT = Path(__file__).resolve().parents[2]
FLASK = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi"]
README = ROOT / "README.md"


def process_env(directory: Path, **extra: str) -> dict[str, str]:
    """A development environment of our own: a fresh SQLite file, random secrets (so nothing is
    written to instance/), no Redis and no PUBLIC_BASE_URL."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "LANG": "C.UTF-8", "APP_ENV": "development",
           "DATABASE_URL": f"sqlite:///{directory / 'newcomer.db'}", **random_secrets()}
    env.update(extra)
    return env


@contextmanager
def background(argv: list[str], env: dict[str, str], log_path: Path):
    """Run `argv` from the checkout in a new process group; stop the whole group on exit."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def wait_for_file_text(path: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> str:
    """The file's text once `pattern` (a regex) appears in it; fails when `proc` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if re.search(pattern, text):
            return text
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode} before {pattern!r}:\n{text[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} within {timeout:.0f} s:\n{text[-4000:]}")
        time.sleep(0.2)


def read_exports(path: Path) -> dict[str, str]:
    """NAME -> value of the `export NAME='value'` lines `flask fakes` writes."""
    found = re.findall(r"^export ([A-Z_0-9]+)='([^']*)'$", path.read_text(), re.M)
    return dict(found)


def try_it_blocks() -> list[str]:
    """The shell blocks of the README's "Try it" section that a reader pastes (they start with BASE=)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Try it"):text.index("\n## ", text.index("## Try it") + 1)]
    return [block for block in re.findall(r"```sh\n(.*?)```", section, re.S) if block.startswith("BASE=")]


def as_script(block: str, base_url: str, *, prelude: str = "") -> str:
    """A README block as a bash script against `base_url` that stops at the first failing command."""
    body = re.sub(r"^BASE=\S+", f"BASE={base_url}", block, count=1, flags=re.M)
    return "set -euo pipefail\n" + prelude + "\n" + body


def json_helper(block: str) -> str:
    """The README's `json() { ... }` shell function, from the block that defines it."""
    match = re.search(r"^json\(\) \{.*?\"\$1\"; \}$", block, re.S | re.M)
    assert match, "the README's first Try it block defines json()"
    return match.group(0)
