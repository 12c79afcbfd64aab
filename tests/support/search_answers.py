"""The search requests whose answers tests/data/search_answers.json recorded before the index went columnar.

    python -m tests.support.search_answers   # re-record (only when a ranking change is intended)
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from urllib.parse import urlencode

DATA = Path(__file__).resolve().parent.parent / "data"
ANSWERS = DATA / "search_answers.json"
PINYIN = ("yibao", "shebao", "gjj", "sfz", "hukou", "jiashizheng", "hz", "yb", "gongjijin tiqu", "jiehun")
HALLS = ("370000", "370100", "370102", "370200", "371300")
TOPICS = ("person-household", "person-social-security", "legal-startup")


def _queries() -> list[str]:
    found: list[str] = []
    for name in ("search_relevance.csv", "search_relevance_heldout.csv"):
        with (DATA / name).open(encoding="utf-8") as handle:
            found += [row["query"] for row in csv.DictReader(handle)]
    return list(dict.fromkeys([*found, *PINYIN, "３７０１００", "不存在的事项名称xyz"]))


def search_paths() -> list[str]:
    """About 250 GET /api/v1/services requests: every relevance query, and filters, pages, browsing."""
    queries = _queries()
    paths = [{"q": q, "page_size": 10} for q in queries]
    for i, q in enumerate(queries[:40]):
        paths.append({"q": q, "hall": HALLS[i % len(HALLS)], "page_size": 5})
        paths.append({"q": q, "city": "370100" if i % 2 else "370200", "page": 1 + i % 3, "page_size": 5})
    for i, q in enumerate(queries[40:70]):
        paths.append({"q": q, "audience": ("person", "legal")[i % 2], "high_frequency": ("true", "false")[i % 2],
                      "channel": ("app", "wechat", "alipay")[i % 3], "page_size": 5})
    paths += [{"hall": h, "page_size": 5} for h in HALLS]
    paths += [{"topic": t, "page": 2, "page_size": 5} for t in TOPICS]
    paths += [{"instant_approval": "true", "page_size": 5}, {"high_frequency": "true", "page_size": 5},
              {"item_type": "行政许可", "city": "371300", "page_size": 5}, {"page": 3, "page_size": 7}]
    return ["/api/v1/services?" + urlencode(p) for p in paths]


def answer(body: bytes) -> dict:
    """What is kept of one answer: the digest of its exact content (every value, in order) and the codes
    and total to read a diff by. Answers were recorded as json.dumps writes them by default; the API now
    sends compact JSON, so the body is written back in the recorded spelling before it is digested."""
    data = json.loads(body)
    recorded_spelling = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return {"sha256": hashlib.sha256(recorded_spelling).hexdigest(), "total": data["total"],
            "codes": [item["code"] for item in data["items"]]}


def record() -> None:
    import base64
    import secrets
    import tempfile

    from app.schema_migrations import upgrade_schema

    from app import create_app
    from app.cli import run_seeders
    keys = {name: base64.b64encode(secrets.token_bytes(32)).decode() for name in
            ("SECRET_KEY", "PII_ENCRYPTION_KEY", "PII_INDEX_KEY", "KEY_ENCRYPTION_KEY", "IDEMPOTENCY_HMAC_KEY")}
    folder = tempfile.mkdtemp(prefix="ias-search-answers-")
    app = create_app({"APP_ENV": "test", "TESTING": True, "DATABASE_URL": f"sqlite:///{folder}/answers.db",
                      "REDIS_URL": None, "PUBLIC_BASE_URL": "http://localhost", **keys})
    with app.app_context():
        upgrade_schema()
        run_seeders()
    client = app.test_client()
    answers = {}
    for path in search_paths():
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        answers[path] = answer(response.data)
    ANSWERS.write_text(json.dumps(answers, ensure_ascii=False, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(answers)} answers written to {ANSWERS}")


if __name__ == "__main__":
    record()
