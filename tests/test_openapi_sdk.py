"""The served OpenAPI document is SDK-ready: openapi-python-client (default settings) generates a client
that talks to the app, Redocly's recommended rules find no error, and the document says what SDKs need."""
from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.browser import live_server
from tests.support.helpers import add_registry_person, issue_sms_code, valid_id_number, valid_phone

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / ".venv" / "bin" / "openapi-python-client"
REDOCLY = ROOT / "tools" / "openapi-lint" / "node_modules" / ".bin" / "redocly"
METHODS = ("get", "post", "put", "patch", "delete")
# openapi-python-client (default settings) types only JSON, text/* and octet-stream bodies: these
# answers are documented with their real media types and reach SDK users as raw bytes.
RAW_MEDIA_TYPES = {"application/pdf", "application/statuslist+jwt", "application/oauth-authz-req+jwt",
                   "application/x-pem-file", "image/jpeg", "image/png"}


@pytest.fixture(scope="module")
def document(app):
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


# ------------------------------------------------------------------------------------------- the document


def test_every_operation_has_a_unique_readable_operation_id(document):
    ids = [operation["operationId"] for *_, operation in _operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+[A-Za-z0-9]*", operation_id) for operation_id in ids)
    named = {(path, method): operation["operationId"] for path, method, operation in _operations(document)}
    assert named["/api/v1/applications", "post"] == "createApplication"
    assert named["/api/v1/wallet/licenses", "get"] == "listWalletLicenses"
    assert named["/api/v1/applications/{application_id}", "get"] == "getApplication"


def test_every_operation_declares_security_and_401_where_a_credential_is_accepted(document):
    schemes = document["components"]["securitySchemes"]
    for path, method, operation in _operations(document):
        assert "security" in operation, (method, path)
        for requirement in operation["security"]:
            assert set(requirement) <= set(schemes), (method, path)
        if any(operation["security"]):
            assert "401" in operation["responses"], (method, path)
    by_id = {operation["operationId"]: operation for *_, operation in _operations(document)}
    assert by_id["register"]["security"] == []
    assert by_id["getMe"]["security"] == [{"bearerAuth": []}]
    assert {"openApiSignature"} <= set().union(*by_id["pingOpenApi"]["security"])


def test_rate_limits_etags_and_non_json_answers_are_declared(document):
    headers = document["components"]["headers"]
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status in ("423", "429"):
                assert response["headers"]["Retry-After"]["$ref"] == "#/components/headers/RetryAfter", (method, path)
    assert headers["RetryAfter"]["schema"]["type"] == "integer"
    status_list = document["paths"]["/api/v1/status-lists/{list_id}"]["get"]["responses"]
    assert "application/statuslist+jwt" in status_list["200"]["content"]
    assert "ETag" in status_list["200"]["headers"] and "ETag" in status_list["304"]["headers"]
    assert "ETag" in document["paths"]["/api/v1/services"]["get"]["responses"]["200"]["headers"]
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert document["servers"][0]["url"].startswith("http")


def _schemas_with_properties(node):
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield node
        for value in node.values():
            yield from _schemas_with_properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas_with_properties(value)


def test_fields_are_typed_and_enums_shared_with_ascii_member_names(document):
    schemas = document["components"]["schemas"]
    for holder in _schemas_with_properties(document):
        for name, prop in holder["properties"].items():
            assert {"type", "$ref", "anyOf", "oneOf", "allOf"} & set(prop), name
            assert "enum" not in prop, f"inline enum on {name}"
    for parameter in (p for *_, operation in _operations(document) for p in operation.get("parameters", ())):
        assert "enum" not in parameter.get("schema", {}), parameter["name"]
    enums = {name: schema for name, schema in schemas.items() if "enum" in schema}
    value_lists = [tuple(schema["enum"]) for schema in enums.values()]
    assert len(value_lists) == len(set(value_lists))
    for name, schema in enums.items():
        members = schema["x-enum-varnames"]
        assert len(members) == len([v for v in schema["enum"] if v is not None]) == len(set(members)), name
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", member) for member in members), (name, members)
    assert enums["Charset"]["x-enum-varnames"] == ["UTF_8", "UTF_8_LOWER", "UTF8", "UTF8_LOWER"]
    assert dict(zip(enums["ItemType"]["enum"], enums["ItemType"]["x-enum-varnames"]))["行政许可"] == \
        "ADMINISTRATIVE_LICENSING"
    assert schemas["Application"]["properties"]["status"]["$ref"] == "#/components/schemas/ApplicationStatus"
    # computed fields are always dumped: required in the answers
    assert {"status_label", "overdue", "timeline"} <= set(schemas["Application"]["required"])


# ------------------------------------------------------------------------------------------------ tools


def _generate(document, tmp_path) -> tuple[Path, str]:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run([str(GENERATOR), "generate", "--path", str(spec), "--output-path", str(tmp_path / "sdk")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    packages = [p for p in (tmp_path / "sdk").iterdir() if (p / "client.py").exists()]
    assert len(packages) == 1
    return packages[0], result.stdout + result.stderr


def test_openapi_python_client_generates_a_client_that_talks_to_the_app(app, document, tmp_path):
    package, log = _generate(document, tmp_path)
    unsupported = set(re.findall(r"Unsupported content_type ([^)]*)\)", log))
    assert "will not be generated" not in log and "Unable to parse" not in log, log
    assert {t for found in unsupported for t in found.split(", ")} <= RAW_MEDIA_TYPES, log
    assert log.count("WARNING parsing") == len(re.findall(r"Unsupported content_type", log)), log

    sys.path.insert(0, str(package.parent))
    try:
        sdk = importlib.import_module(package.name)
        api = importlib.import_module(f"{package.name}.api")
        models = importlib.import_module(f"{package.name}.models")
        catalogue = importlib.import_module(f"{package.name}.api.catalogue.list_services")
        register = importlib.import_module(f"{package.name}.api.identity.register")
        token = importlib.import_module(f"{package.name}.api.identity.create_token")
        me = importlib.import_module(f"{package.name}.api.identity.get_me")
        wallet = importlib.import_module(f"{package.name}.api.wallet.list_wallet_licenses")
        application = importlib.import_module(f"{package.name}.api.applications.get_application")
        assert api is not None
        id_number, phone = valid_id_number(), valid_phone()
        add_registry_person(app, id_number=id_number, name="赵客户")
        with live_server(app) as base_url:
            anonymous = sdk.Client(base_url=base_url, raise_on_unexpected_status=True)
            services = catalogue.sync(client=anonymous, q="身份证", page_size=5)
            assert isinstance(services, models.ServiceList) and services.items
            assert all(isinstance(item.code, str) for item in services.items)

            person = register.sync(client=anonymous, body=models.Register(
                id_number=id_number, name="赵客户", phone=phone, password="Sdk-Passw0rd!",
                sms_code=issue_sms_code(app, phone, "register")))
            assert isinstance(person, models.Person) and person.subject_id.startswith("p_")
            tokens = token.sync(client=anonymous, body=models.TokenRequest(
                grant_type=models.GrantType.PASSWORD, username=id_number, password="Sdk-Passw0rd!"))
            assert isinstance(tokens, models.TokenPair)

            citizen = sdk.AuthenticatedClient(base_url=base_url, token=tokens.access_token,
                                              raise_on_unexpected_status=True)
            profile = me.sync(client=citizen)
            assert isinstance(profile, models.Me) and profile.subject_id == person.subject_id
            assert profile.subject_type == models.SubjectType.PERSON
            assert profile.id_number_masked != id_number and profile.id_number_masked.endswith(id_number[-1])

            licenses = wallet.sync(client=citizen, status=models.WalletLicenseStatus.VALID)
            assert isinstance(licenses, models.WalletLicensePage) and licenses.total == len(licenses.items)

            missing = application.sync_detailed(client=citizen, application_id="ap_00000000000000000000")
            assert missing.status_code == 404
            assert isinstance(missing.parsed, models.Problem) and missing.parsed.status == 404
            assert missing.parsed.title

            denied = me.sync_detailed(client=anonymous)
            assert denied.status_code == 401 and isinstance(denied.parsed, models.Problem)
    finally:
        sys.path.remove(str(package.parent))
        for name in [name for name in sys.modules if name == package.name or name.startswith(package.name + ".")]:
            del sys.modules[name]


def test_redocly_recommended_rules_find_no_error(document, tmp_path):
    assert REDOCLY.exists(), "run scripts/ensure-node-tools.sh (npm ci in tools/openapi-lint)"
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true", "NO_COLOR": "1"}
    result = subprocess.run([str(REDOCLY), "lint", "--extends", "recommended", "--format", "json",
                             "--max-problems", "1000", str(spec)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    report = json.loads(result.stdout)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert errors == [], json.dumps(errors, ensure_ascii=False, indent=1)[:4000]
    assert report["totals"]["errors"] == 0
    print("redocly warnings:", report["totals"]["warnings"])
