"""Every `reason` a verification can answer has a label on the verifier page, in the README, in the
OpenAPI document and in the holder's access log: the codes are `DETAILS` of
app/wallet/verification.py, and the code returns no reason outside it."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app.wallet import access_log, key_binding, verification
from app.wallet.models import LICENSE_STATUSES
from tests.support.browser import chromium, live_server
from tests.support.helpers import API
from tests.support.wallet import present

ROOT = Path(__file__).resolve().parent.parent
ANSWERING = ("verification.py", "key_binding.py", "verifier_requests.py")
REASON_SLOTS = {"_answer": 2, "Checked": 0, "failure": 0}  # positional argument that carries the result
REASON_NAMES = {"result", "reason"}
CODE = re.compile(r"[a-z]+(?:_[a-z]+)*")


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _target_name(target: ast.AST) -> str | None:
    return target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else None


def returned_reasons() -> set[str]:
    """Every result the answering modules can produce: literals passed as the result of `_answer`,
    `Checked` and `failure` or assigned to a `result`, the SdJwtError reasons passed through, and
    the license statuses the status list reports."""
    found: set[str] = set()
    for name in ANSWERING:
        tree = ast.parse((ROOT / "app" / "wallet" / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                callee = _target_name(node.func)
                slot = REASON_SLOTS.get(callee)
                if slot is not None and len(node.args) > slot:
                    found |= _strings(node.args[slot])
            elif isinstance(node, ast.Assign) and any(_target_name(t) in REASON_NAMES for t in node.targets):
                found |= _strings(node.value)
    found |= set(key_binding.PASSED_THROUGH) | set(LICENSE_STATUSES)
    return {code for code in found if CODE.fullmatch(code)} - {"valid"}


def page_labels(text: str) -> dict[str, str]:
    block = re.search(r"var REASONS = \{(.*?)\};", text, re.S)
    assert block, "verify.js has no REASONS table"
    return dict(re.findall(r'^\s*([a-z_]+): "([^"]+)"', block.group(1), re.M))


def enums_with(node, value: str) -> list[list]:
    """Every `enum` list in a JSON document that contains `value`."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list) and value in node["enum"]:
            found.append(node["enum"])
        for child in node.values():
            found += enums_with(child, value)
    elif isinstance(node, list):
        for child in node:
            found += enums_with(child, value)
    return found


def test_the_code_returns_exactly_the_documented_reasons():
    assert returned_reasons() == set(verification.DETAILS)
    assert all(verification.DETAILS.values())


def test_every_reason_has_a_label_on_the_verifier_page(client):
    response = client.get("/web/static/verify.js")
    labels = page_labels(response.get_data(as_text=True))
    response.close()
    assert set(labels) == set(verification.DETAILS)
    assert len(set(labels.values())) == len(labels)  # no two reasons read alike


def test_every_reason_is_in_the_readme_the_openapi_enum_and_the_access_log(client):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"\*\*Verification answers \(`reason`\)\.\*\*(.*?)(?:\n- \*\*|\n## )", readme, re.S)
    assert section, "README has no verification answers section"
    listed = set(re.findall(r"`([a-z_]+)`", section.group(1)))
    assert set(verification.DETAILS) <= listed
    document = client.get("/openapi.json").get_json()
    enums = enums_with(document, "device_binding_required")
    assert enums, "the OpenAPI document does not enumerate the reasons"
    for enum in enums:
        assert set(verification.DETAILS) <= set(enum)
    assert set(verification.DETAILS) <= set(access_log.RESULT_LABELS)


@pytest.mark.slow
def test_the_page_names_a_cancelled_presentation(app, client, alice, card):
    shown = present(client, alice["headers"], card["license_id"], mode="offline")
    assert client.delete(f"{API}/wallet/licenses/{card['license_id']}/presentations/{shown['presentation_id']}",
                         headers=alice["headers"]).status_code == 204
    with live_server(app) as base, chromium() as browser:
        page = browser.new_page(locale="zh-CN")
        page.goto(f"{base}/verify")
        page.fill("#presentation", shown["sd_jwt"])
        page.click("#verify-button")
        page.wait_for_selector("#result.invalid")
        assert page.locator("#reason").inner_text() == "原因：持证人已结束本次亮证"
        assert verification.DETAILS["cancelled"] in page.locator("#result").inner_text()
