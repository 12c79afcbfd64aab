"""The compact (columnar) search index answers exactly as the per-item index did: ~300 searches of the
seeded catalogue, byte for byte, against answers recorded before the change (tests/data/search_answers.json)."""
from __future__ import annotations

import json

from tests.support.search_answers import ANSWERS, answer, search_paths


def test_every_recorded_search_answers_the_same_bytes(client):
    recorded = json.loads(ANSWERS.read_text(encoding="utf-8"))
    assert sorted(recorded) == sorted(search_paths())
    changed = {}
    for path in search_paths():
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_json())
        got = answer(response.data)
        if got != recorded[path]:
            changed[path] = {"now": got, "recorded": recorded[path]}
    assert not changed, json.dumps(dict(list(changed.items())[:3]), ensure_ascii=False, indent=1)
