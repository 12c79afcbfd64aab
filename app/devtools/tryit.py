"""The "try it" block `make run` prints once the server answers (scripts/announce.py)."""
from __future__ import annotations

from .accounts import DEMO_ACCOUNTS, ROLE_NAMES, UNREGISTERED_DEMO_PERSON
from .demo_cases import demo_activity_lines

DASHBOARD_HALL = "370102"


def try_it_text(base_url: str, *, demo_password: str | None, demo_clients: list[str] = ()) -> str:
    """Where to look first; the demo accounts (and `demo_clients` lines) only when a development
    password is given."""
    base = base_url.rstrip("/")
    admin = next(a for a in DEMO_ACCOUNTS if a.role == "hall_admin" and a.hall_code == DASHBOARD_HALL)
    lines = [
        "Try it:",
        f"  start page       {base}/",
        f"  API docs         {base}/docs   (OpenAPI document: {base}/openapi.json)",
        f"  verifier page    {base}/verify",
        f"  hall dashboard   {base}/halls/{DASHBOARD_HALL}/dashboard   (sign in as {admin.name}, {admin.id_number})",
        f"  problem types    {base}/problems",
    ]
    if demo_password:
        lines.append(f"  demo accounts    user name = ID number, password {demo_password}")
        for account in DEMO_ACCOUNTS:
            hall = f" {account.hall_name}" if account.hall_name else ""
            lines.append(f"    {account.id_number}  {account.name}  {ROLE_NAMES[account.role]}{hall}")
        id_number, name = UNREGISTERED_DEMO_PERSON
        lines.append(f"    {id_number}  {name}  (in the registry, no account: try registering or a mini-program login)")
        if demo_clients:
            lines.append("  demo clients     (POST /api/v1/auth/token grant_type=client_credentials)")
            lines += [f"    {line}" for line in demo_clients]
        lines.append("  demo activity    (flask seed; GET /api/v1/applications as each resident)")
        lines += [f"    {line}" for line in demo_activity_lines()]
    lines += [
        "  curl walkthrough README.md, section \"Try it\"; mini-programs on a laptop: make fakes",
        "  registries       .venv/bin/flask --app wsgi registry list",
    ]
    return "\n".join(lines)
