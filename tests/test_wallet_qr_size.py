"""The offline QR code is as small as the SD-JWT format allows and a desk camera reads it: the
offline presentation of a typical 居民身份证 (name, gender, birth date) rendered as PNG by segno,
scaled to 400x400 pixels by Pillow, decoded by zbar, verified by the API and the sd-jwt library."""
from __future__ import annotations

import base64
import io
import json
from datetime import datetime, time, timedelta

import numpy as np
import pytest
from PIL import Image
from pyzbar import pyzbar
from sqlalchemy import select

from app.extensions import db
from app.timeutil import BEIJING
from app.wallet.models import License
from app.wallet.qr import make_qr
from tests.support.devices import BASE, b64json, library_verify, payload_of
from tests.support.wallet import id_card_fields, issue, present, resident, svg_modules, today, verify

TYPICAL = ["name", "gender", "birth_date"]
QR_VERSION_BEFORE = 37  # level M, with `iat`, `_sd_alg` and a past `nbf` in the credential (issue 21)
QR_VERSION_NOW = 32     # level L, only what the verifier needs
CAMERA_PIXELS = (400, 400)
NEEDED_CLAIMS = {"iss", "exp", "vct", "identifier", "holder_binding", "cnf", "status", "_sd"}


def camera_image(sd_jwt: str, resample: Image.Resampling) -> Image.Image:
    """The QR code as the holder's phone shows it (segno PNG, 8 px per module, quiet zone 4),
    seen by a desk camera at 400x400 pixels."""
    buffer = io.BytesIO()
    make_qr(sd_jwt).save(buffer, kind="png", scale=8, border=4)
    buffer.seek(0)
    return Image.open(buffer).convert("L").resize(CAMERA_PIXELS, resample)


def zbar_read(image: Image.Image) -> str:
    found = pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])
    assert len(found) == 1, "zbar could not read the QR code"
    return found[0].data.decode("ascii")


@pytest.fixture
def shown(client, alice, card):
    return present(client, alice["headers"], card["license_id"], mode="offline", disclose=TYPICAL)


def test_typical_id_card_qr_is_small_and_read_at_400_pixels(client, alice, hotel, shown):
    sd_jwt = shown["sd_jwt"]
    assert shown["qr_version"] <= QR_VERSION_NOW < QR_VERSION_BEFORE
    symbol = make_qr(sd_jwt)
    assert symbol.version == shown["qr_version"] and symbol.mode == "byte"
    # the SVG handed out is this very symbol
    served = svg_modules(shown["qr_svg"])
    assert np.array_equal(served, np.array([[bool(m) for m in row] for row in symbol.matrix_iter(border=4)]))
    for resample in (Image.Resampling.NEAREST, Image.Resampling.BILINEAR):
        assert zbar_read(camera_image(sd_jwt, resample)) == sd_jwt, resample
    scanned = zbar_read(camera_image(sd_jwt, Image.Resampling.BILINEAR))
    # what the camera read is a standard SD-JWT: the sd-jwt library and the API verify it
    nonce = b64json(scanned.rsplit("~", 1)[1].split(".")[1])["nonce"]
    theirs = library_verify(client, scanned, aud=BASE, nonce=nonce)
    assert {name: theirs[name] for name in TYPICAL} == {"name": "张三", "gender": "男", "birth_date": "1990-03-07"}
    answer = verify(client, hotel[1], sd_jwt=scanned)
    assert answer["valid"] is True and answer["disclosure"] == "full"
    assert answer["disclosed"] == {"name": "张三", "gender": "男", "birth_date": "1990-03-07"}
    assert verify(client, hotel[1], sd_jwt=scanned)["reason"] == "used"


def test_qr_holds_only_what_the_verifier_needs(client, alice, card, shown):
    issuer_jwt, *disclosures, kb_jwt = shown["sd_jwt"].split("~")
    header_b64, payload_b64, _ = issuer_jwt.split(".")
    assert b64json(header_b64).keys() == {"alg", "typ", "kid"}  # a kid, no certificate chain (x5c)
    payload = b64json(payload_b64)
    assert payload.keys() == NEEDED_CLAIMS  # no iat, no _sd_alg (sha-256), no nbf once valid
    assert len(payload["_sd"]) == 9  # every field still selectively disclosable, no decoys
    assert sorted(b64json(d)[1] for d in disclosures) == sorted(TYPICAL)  # only the disclosed ones
    assert b64json(kb_jwt.split(".")[1]).keys() == {"iat", "aud", "nonce", "sd_hash", "exp"}
    for part in (header_b64, payload_b64, *disclosures, *kb_jwt.split(".")[:2]):
        assert "=" not in part  # base64url without padding
        decoded = b64json(part)
        # compact JSON, UTF-8 (not \\u escapes)
        assert (json.dumps(decoded, separators=(",", ":"), ensure_ascii=False).encode()
                == _b64url_bytes(part)), part


def test_a_license_not_yet_valid_keeps_nbf(app, client, police):
    holder = resident(app, "李四")
    starts = today() + timedelta(days=10)
    lic = issue(client, police, holder_id_number=holder, fields=id_card_fields("李四", holder), valid_from=starts)
    with app.app_context():
        license = db.session.scalar(select(License).where(License.license_id == lic["license_id"]))
        payload = payload_of(license.credential)
    assert payload["nbf"] == int(datetime.combine(starts, time(0), BEIJING).timestamp())
    assert "iat" not in payload and "_sd_alg" not in payload


def _b64url_bytes(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
