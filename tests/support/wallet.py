"""Helpers for the wallet tests (no tests here): issuers, verifiers, licenses, presentations."""
from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pytest

from app.identity.identifiers import id_check_char
from app.timeutil import beijing_today
from tests.support.helpers import API, auth_headers, client_token, create_client, register_person

ID_CARD = "11100000000013100M001"         # 居民身份证, person
DRIVING = "11100000000013100M009"         # 机动车驾驶证, person
VEHICLE = "11100000000013100M010"         # 机动车行驶证, person, 13 fields
BUSINESS = "11100000000013156D001"        # 营业执照, legal


_ISSUED_NUMBERS: set[str] = set()


@pytest.fixture(autouse=True)
def _distinct_id_numbers():
    """Within one test every `person_id_number()` is a different person: a birth date and gender leave only 500
    sequence numbers, so two random draws collided about once in 500 tests (a stranger's license in alice's wallet)."""
    yield
    _ISSUED_NUMBERS.clear()


def person_id_number(birth: date = date(1990, 3, 7), *, male: bool = True, region: str = "370102") -> str:
    """A valid ID number with this birth date and gender (the sequence digit's parity), new in this test."""
    import secrets
    while True:
        sequence = secrets.randbelow(500) * 2 + (1 if male else 0)
        body = f"{region}{birth:%Y%m%d}{sequence:03d}"
        number = body + id_check_char(body)
        if number not in _ISSUED_NUMBERS:
            _ISSUED_NUMBERS.add(number)
            return number


@pytest.fixture
def alice(app, client):
    """张三, registered: the holder of most wallet tests (a man born 1990-03-07, as his ID number says)."""
    return register_person(client, app, name="张三", id_number=person_id_number())


def today() -> date:
    """The day the platform's date checks use (China time), not the machine's."""
    return beijing_today()


def issuer_headers(app, client, types=(ID_CARD,), *, name="济南市公安局历下区分局") -> dict:
    client_id, secret = create_client(app, "issuer", license_types=types, name=name)
    return auth_headers(client_token(client, client_id, secret))


def verifier_headers(app, client, types=(ID_CARD,), *, name="泉城大酒店") -> dict:
    client_id, secret = create_client(app, "verifier", license_types=types, name=name)
    return auth_headers(client_token(client, client_id, secret))


def id_card_fields(name="张三", id_number: str | None = None, **extra) -> dict:
    """居民身份证 fields; gender and birth date are left to the ID number (issuance derives them)
    unless `id_number` is given, when they are written out as it states them."""
    fields = {"name": name, "ethnicity": "汉", "address": "山东省济南市历下区泉城路188号"}
    if id_number:
        fields.update(gender="男" if int(id_number[16]) % 2 else "女",
                      birth_date=f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}")
    return {**fields, **extra}


def resident(app, name: str = "张三", **kwargs) -> str:
    """A new ID number the population registry knows under `name` (no account)."""
    from tests.support.helpers import add_registry_person
    id_number = person_id_number(**kwargs)
    add_registry_person(app, id_number=id_number, name=name)
    return id_number


def driving_fields(name="张三") -> dict:
    return {"name": name, "nationality": "中国", "address": "山东省济南市历下区泉城路188号",
            "first_issue_date": "2012-08-01", "license_class": "C1", "file_number": "370100123456"}


def registered_company(app, credit_code: str, *, name="山东示例科技有限公司", representative="王五") -> None:
    """Put the company (and its representative) into the development registries."""
    from tests.support.helpers import add_registry_entity, add_registry_person, valid_id_number
    rep_id = valid_id_number()
    add_registry_person(app, id_number=rep_id, name=representative)
    add_registry_entity(app, credit_code=credit_code, name=name, representative_id_number=rep_id)


def business_fields(**extra) -> dict:
    return {"entity_name": "山东示例科技有限公司", "legal_representative": "王五", "entity_type": "有限责任公司",
            "registered_capital": "500万元人民币", "establish_date": "2015-06-01", "business_term": "长期",
            "domicile": "山东省济南市高新区舜华路1号", "business_scope": "软件开发；信息技术咨询服务",
            "registration_authority": "济南市市场监督管理局", "license_number": "370100000123456", **extra}


def vehicle_fields(name="张三") -> dict:
    return {"name": name, "plate_number": "鲁A12345", "vehicle_type": "小型普通客车",
            "address": "山东省济南市历下区泉城路188号院3号楼2单元501室", "use_character": "非营运",
            "brand_model": "大众牌FV7152FBDBG", "vin": "LFV2A21K8G3123456", "engine_number": "DJS123456",
            "register_date": "2019-05-20", "issue_date": "2019-05-20", "inspection_valid_until": "2027-05-31"}


def issue(client, headers, *, license_type=ID_CARD, holder_id_number=None, holder_credit_code=None,
          fields=None, valid_from=None, valid_until=None, expect=201):
    body = {"license_type": license_type, "fields": fields if fields is not None else id_card_fields(),
            "valid_from": (valid_from or today() - timedelta(days=30)).isoformat(),
            "valid_until": (valid_until or today() + timedelta(days=3650)).isoformat()}
    if holder_id_number:
        body["holder_id_number"] = holder_id_number
    if holder_credit_code:
        body["holder_credit_code"] = holder_credit_code
    response = client.post(f"{API}/licenses", json=body, headers=headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def present(client, headers, license_id, *, expect=201, **body):
    body.setdefault("purpose", "酒店入住登记")
    response = client.post(f"{API}/wallet/licenses/{license_id}/presentations", json=body, headers=headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def verify(client, headers=None, *, expect=200, **body):
    response = client.post(f"{API}/verifications", json=body, headers=headers or {})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def access_log(client, headers, license_id, **args):
    response = client.get(f"{API}/wallet/licenses/{license_id}/access-log", headers=headers, query_string=args)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# ---- reading a QR code back from the SVG we hand out


_PATH_TOKENS = re.compile(r"([MmHhVvZz])\s*([-0-9.\s]*)")


def svg_modules(svg: str) -> np.ndarray:
    """Rasterise segno's SVG (one path of horizontal strokes, `scale(n)` transform) into a
    boolean module matrix including the quiet zone."""
    width = int(re.search(r'width="([0-9]+)"', svg).group(1))
    scale = int(re.search(r'scale\(([0-9]+)\)', svg).group(1))
    size = width // scale
    path = re.search(r' d="([^"]+)"', svg).group(1)
    grid = np.zeros((size, size), dtype=bool)
    x = y = 0.0
    for command, args in _PATH_TOKENS.findall(path):
        numbers = [float(n) for n in args.split()] if args.strip() else []
        if command == "M":
            x, y = numbers
        elif command == "m":
            x, y = x + numbers[0], y + numbers[1]
        elif command == "h":
            row = int(y)
            grid[row, int(x):int(x + numbers[0])] = True
            x += numbers[0]
        else:
            raise AssertionError(f"unexpected path command {command}")
    return grid


def decode_qr_svg(svg: str) -> bytes:
    """Decode the SVG with zbar (pyzbar) after rasterising it at 4 px per module."""
    from pyzbar import pyzbar
    modules = svg_modules(svg)
    pixels = np.where(modules, 0, 255).astype(np.uint8)
    pixels = np.kron(pixels, np.ones((4, 4), dtype=np.uint8))
    results = pyzbar.decode((pixels.tobytes(), pixels.shape[1], pixels.shape[0]),
                            symbols=[pyzbar.ZBarSymbol.QRCODE])
    assert len(results) == 1, "zbar could not read the QR code"
    return results[0].data
