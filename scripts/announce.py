"""`make run`'s announcer: wait until the server answers /healthz, then print where it serves and
the "try it" block. Gives up quietly when the server process (--pid) exits first.

    python scripts/announce.py --port 5000 --pid 1234
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _demo_credentials() -> tuple[str | None, list[str]]:
    """The development demo password and client lines (derived from SECRET_KEY); nothing outside development."""
    from app.config import config_for_env, ensure_secrets
    config = {name: getattr(config_for_env(), name) for name in dir(config_for_env()) if name.isupper()}
    if config.get("APP_ENV") != "development":
        return None, []
    ensure_secrets(config, str(ROOT / "instance"))
    from app.devtools.accounts import demo_password
    from app.devtools.demo_clients import demo_client_lines
    return demo_password(config["SECRET_KEY"]), demo_client_lines(config["SECRET_KEY"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--pid", type=int, default=None, help="the server process to watch")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    local = f"http://127.0.0.1:{args.port}"
    password, clients = _demo_credentials()
    from app.devtools.tryit import try_it_text
    deadline = time.monotonic() + args.timeout
    while not _answers(local + "/healthz"):
        if not _alive(args.pid):
            return 1
        if time.monotonic() > deadline:
            print(f"the server did not answer {local}/healthz within {args.timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(0.3)
    public = os.environ.get("PUBLIC_BASE_URL")
    suffix = f"  (public URL {public})" if public and public.rstrip("/") != local else ""
    print(f"\nserving on {local}{suffix}  (Ctrl-C stops)\n\n{try_it_text(local, demo_password=password, demo_clients=clients)}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
