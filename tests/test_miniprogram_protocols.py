"""Protocol tests for the WeChat and Alipay mini-program clients against loopback fakes and oracles."""
from __future__ import annotations

import base64
import json
import secrets
import socket
from urllib.parse import parse_qsl

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from Cryptodome.Cipher import AES as OracleAES
from Cryptodome.Util.Padding import pad as oracle_pad

from app.errors import (BadRequest, Forbidden, ServiceUnavailable, TooManyRequests, Unauthorized,
                        UpstreamError)
from app.store import MemoryStore
from miniprograms.alipay.client import AlipayClient
from miniprograms.alipay.crypto import AlipayCryptoError, aes_decrypt, aes_encrypt
from miniprograms.alipay.signing import (extract_signed_content, sign_content, sign_params,
                                         signing_string, verify_params, verify_response)
from miniprograms.base import ChannelAdapter, ChannelIdentity
from miniprograms.wechat.client import WeChatClient
from miniprograms.wechat.crypto import decrypt_encrypted_data
from tests.fakes import alipay_server as ali
from tests.fakes.alipay_server import FakeAlipayGateway, generate_rsa_keypair, rsa2_sign
from tests.fakes.wechat_server import GARBLED, FakeWeChatServer, Slow

# WeChat's published sample ("开放数据校验与解密"), also in wechatpy's tests.
SAMPLE_APP_ID = "wx4f4bc4dec97d474b"
SAMPLE_SESSION_KEY = "tiihtNczf5v6AKRyjwEUhQ=="
SAMPLE_IV = "r7BXXKkLb8qrSNn05n0qiA=="
SAMPLE_ENCRYPTED_DATA = (
    "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPd"
    "bB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVL"
    "W1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1Ok"
    "sQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4D"
    "nNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0"
    "IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==")
SAMPLE_TIMESTAMP = 1477314187

ALIPAY_APP_ID = "2021000000000001"
OAUTH = "alipay.system.oauth.token"


def _raw_cbc(key_b64: str, iv_b64: str, data: bytes, *, decrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(base64.b64decode(key_b64)), modes.CBC(base64.b64decode(iv_b64)))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


# ---- WeChat open-data decryption -------------------------------------------------------------

def test_wechat_sample_decrypts():
    data = decrypt_encrypted_data(SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA, SAMPLE_IV,
                                  app_id=SAMPLE_APP_ID)
    assert data["openId"] == "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
    assert data["watermark"] == {"timestamp": SAMPLE_TIMESTAMP, "appid": SAMPLE_APP_ID}


def test_wechat_sample_refused_for_another_app():
    with pytest.raises(Forbidden) as caught:
        decrypt_encrypted_data(SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA, SAMPLE_IV,
                               app_id="wx0000000000000000")
    assert caught.value.status == 403 and "水印" in caught.value.detail


def test_wechat_stale_watermark_refused():
    fresh = decrypt_encrypted_data(SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA, SAMPLE_IV,
                                   app_id=SAMPLE_APP_ID, max_age_seconds=300,
                                   now=SAMPLE_TIMESTAMP + 300)
    assert fresh["openId"]
    with pytest.raises(BadRequest) as caught:
        decrypt_encrypted_data(SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA, SAMPLE_IV,
                               app_id=SAMPLE_APP_ID, max_age_seconds=300,
                               now=SAMPLE_TIMESTAMP + 301)
    assert "过期" in caught.value.detail


@pytest.mark.parametrize("last_bytes", [b"\x07\x07\x05", b"\x07\x07\x00", b"\x07\x07\x11"])
def test_wechat_tampered_padding_refused(last_bytes):
    padded = _raw_cbc(SAMPLE_SESSION_KEY, SAMPLE_IV, base64.b64decode(SAMPLE_ENCRYPTED_DATA),
                      decrypt=True)
    assert padded.endswith(b"\x07" * 7)
    forged = _raw_cbc(SAMPLE_SESSION_KEY, SAMPLE_IV, padded[:-3] + last_bytes, decrypt=False)
    with pytest.raises(BadRequest):
        decrypt_encrypted_data(SAMPLE_SESSION_KEY, base64.b64encode(forged).decode(), SAMPLE_IV,
                               app_id=SAMPLE_APP_ID)


@pytest.mark.parametrize("session_key, data, iv", [
    ("not base64!", SAMPLE_ENCRYPTED_DATA, SAMPLE_IV),
    (SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA[:-4], SAMPLE_IV),
    (SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA, "AAAA"),
    (base64.b64encode(b"k" * 16).decode(), SAMPLE_ENCRYPTED_DATA, SAMPLE_IV),
])
def test_wechat_malformed_inputs_are_bad_requests(session_key, data, iv):
    with pytest.raises(BadRequest):
        decrypt_encrypted_data(session_key, data, iv, app_id=SAMPLE_APP_ID)


# ---- WeChat server API ------------------------------------------------------------------------

@pytest.fixture
def wechat():
    with FakeWeChatServer() as fake:
        yield fake


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def wx(wechat, store):
    return WeChatClient(wechat.app_id, wechat.app_secret, wechat.base_url, store, timeout=(1, 0.5))


def test_code2session_returns_identity(wechat, wx):
    session = wechat.add_user("good", "o-user-1", unionid="u-user-1")
    identity = wx.code2session("good")
    assert identity == ChannelIdentity("wechat", wechat.app_id, "o-user-1", "u-user-1",
                                       session["session_key"])
    assert session["session_key"] not in repr(identity)
    sent = wechat.requests[0].query
    assert sent == {"appid": wechat.app_id, "secret": wechat.app_secret, "js_code": "good",
                    "grant_type": "authorization_code"}


@pytest.mark.parametrize("outcome, error, status", [
    (40029, BadRequest, 400),
    (45011, TooManyRequests, 429),
    (40226, Forbidden, 403),
    (-1, ServiceUnavailable, 503),
    (GARBLED, UpstreamError, 502),
    (40125, UpstreamError, 502),
])
def test_code2session_error_mapping(wechat, wx, outcome, error, status):
    wechat.on_code("c", outcome)
    with pytest.raises(error) as caught:
        wx.code2session("c")
    assert caught.value.status == status
    assert caught.value.detail and not caught.value.detail.isascii()
    if status == 429:
        assert caught.value.headers["Retry-After"] == "60"


def test_code2session_used_code_is_unauthorized(wechat, wx):
    wechat.add_user("once", "o-1")
    wx.code2session("once")
    with pytest.raises(Unauthorized) as caught:
        wx.code2session("once")
    assert caught.value.status == 401


def test_code2session_retries_system_busy_once(wechat, wx):
    wechat.on_code("busy-once", -1, {"openid": "o-2", "session_key": "c2s="})
    assert wx.code2session("busy-once").open_id == "o-2"
    assert len(wechat.requests) == 2


def test_code2session_busy_twice_is_503_after_two_calls(wechat, wx):
    wechat.on_code("busy", -1)
    with pytest.raises(ServiceUnavailable):
        wx.code2session("busy")
    assert len(wechat.requests) == 2


def test_code2session_timeout_is_503_without_leaking_the_secret(wechat, wx):
    wechat.on_code("slow", Slow(1.5))
    with pytest.raises(ServiceUnavailable) as caught:
        wx.code2session("slow")
    assert caught.value.status == 503
    assert caught.value.__cause__ is None and wechat.app_secret not in str(caught.value)


def test_code2session_unreachable_is_503(store):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = WeChatClient("wx1", "s", f"http://127.0.0.1:{port}", store, timeout=(0.5, 0.5))
    with pytest.raises(ServiceUnavailable):
        client.code2session("any")


def test_access_token_is_cached_in_store(wechat, wx, store):
    wechat.phone_codes.update({"p1": "13800138000", "p2": "13900139000"})
    assert wx.phone_number("p1") == "13800138000"
    assert wx.phone_number("p2") == "13900139000"
    assert wechat.token_calls == 1
    assert wechat.token_requests[0] == {"grant_type": "client_credential", "appid": wechat.app_id,
                                        "secret": wechat.app_secret, "force_refresh": False}
    key = f"wechat:access_token:{wechat.app_id}"
    assert store.get(key) == wechat.current_token
    assert 7200 - 300 - 5 <= store.ttl(key) <= 7200 - 300


def test_access_token_refreshed_once_on_40001(wechat, wx):
    wechat.phone_codes.update({"p1": "13800138000", "p2": "13900139000"})
    wx.phone_number("p1")
    wechat.invalidate_token()
    assert wx.phone_number("p2") == "13900139000"
    assert wechat.token_calls == 2
    assert wechat.token_requests[1]["force_refresh"] is True


def test_access_token_taken_from_another_worker_after_40001(wechat, wx, store):
    wechat.phone_codes.update({"p1": "13800138000", "p2": "13900139000"})
    other = WeChatClient(wechat.app_id, wechat.app_secret, wechat.base_url, store)
    wx.phone_number("p1")
    wechat.invalidate_token()
    wechat.phone_codes["p3"] = "13700137000"
    other.phone_number("p2")
    calls = wechat.token_calls
    assert wx.phone_number("p3") == "13700137000"
    assert wechat.token_calls == calls


def test_phone_number_invalid_code_is_400(wechat, wx):
    with pytest.raises(BadRequest):
        wx.phone_number("unknown")


def test_subscribe_message_sent_and_refusal_mapped(wechat, wx):
    wx.send_subscribe_message("o-1", "TPL-1", {"thing1": "办件已受理", "time2": "2024-05-01 10:00"},
                              page="pages/case/index?id=1")
    sent = wechat.sent_messages[0]
    assert sent["touser"] == "o-1" and sent["page"] == "pages/case/index?id=1"
    assert sent["data"]["thing1"] == {"value": "办件已受理"}
    wechat.refused_openids.add("o-2")
    with pytest.raises(Forbidden):
        wx.send_notice("o-2", "TPL-1", {"thing1": "x"})


def test_msg_sec_check(wechat, wx):
    wechat.risky_words.add("违禁词")
    assert wx.msg_sec_check("o-1", "你好，济南") is True
    assert wx.msg_sec_check("o-1", "这是违禁词") is False


# ---- Alipay signing ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys():
    app_private, app_public = generate_rsa_keypair()
    alipay_private, alipay_public = generate_rsa_keypair()
    return {"app_private": app_private, "app_public": app_public,
            "alipay_private": alipay_private, "alipay_public": alipay_public,
            "aes": base64.b64encode(secrets.token_bytes(16)).decode()}


def _sdk(private_pem: str, public_pem: str) -> AliPay:
    return AliPay(appid=ALIPAY_APP_ID, app_notify_url=None, app_private_key_string=private_pem,
                  alipay_public_key_string=public_pem, sign_type="RSA2")


def _sdk_sign(sdk: AliPay, params: dict) -> str:
    return dict(parse_qsl(sdk.sign_data(dict(params))))["sign"]


SAMPLE_PARAMS = {
    "app_id": ALIPAY_APP_ID, "method": OAUTH, "charset": "utf-8", "sign_type": "RSA2",
    "timestamp": "2024-05-01 10:00:00", "version": "1.0", "grant_type": "authorization_code",
    "code": "4b203fe6c11548bcabd8da5bb087a83b",
    "biz_content": '{"scene":"登录","note":"a&b=c {x}"}',
}


def test_sign_params_equals_python_alipay_sdk(keys):
    sdk = _sdk(keys["app_private"], keys["app_public"])
    assert sign_params(SAMPLE_PARAMS, keys["app_private"]) == _sdk_sign(sdk, SAMPLE_PARAMS)


def test_sdk_verify_accepts_ours_and_ours_accepts_sdk(keys):
    sdk = _sdk(keys["app_private"], keys["app_public"])
    ours = sign_content(signing_string(SAMPLE_PARAMS, include_sign_type=False), keys["app_private"])
    assert sdk.verify(dict(SAMPLE_PARAMS), ours) is True
    without_type = {k: v for k, v in SAMPLE_PARAMS.items() if k != "sign_type"}
    theirs = _sdk_sign(sdk, without_type)
    assert verify_params({**SAMPLE_PARAMS, "sign": theirs}, keys["app_public"]) is True
    request_sign = _sdk_sign(sdk, SAMPLE_PARAMS)
    assert verify_params({**SAMPLE_PARAMS, "sign": request_sign}, keys["app_public"],
                         include_sign_type=True) is True
    assert verify_params({**SAMPLE_PARAMS, "code": "x", "sign": theirs}, keys["app_public"]) is False


def test_signing_string_drops_empty_values_and_sign():
    params = {"b": "2", "a": "1", "empty": "", "none": None, "sign": "zzz", "sign_type": "RSA2",
              "biz_content": {"k": "中"}}
    assert signing_string(params) == 'a=1&b=2&biz_content={"k":"中"}&sign_type=RSA2'
    assert signing_string(params, include_sign_type=False) == 'a=1&b=2&biz_content={"k":"中"}'


# ---- Alipay response extraction and verification ----------------------------------------------

TRICKY_NODE = ('{"code":"10000","msg":"Success","memo":"a}\\"{b\\\\","nested":{"x":[1,{"y":"}"}]},'
               '"decoy":"\\"alipay_system_oauth_token_response\\":{}","中文":"值"}')


@pytest.mark.parametrize("body, expected", [
    ('{"alipay_system_oauth_token_response":' + TRICKY_NODE + ',"sign":"S1"}', TRICKY_NODE),
    ('{"sign":"S1","alipay_system_oauth_token_response":' + TRICKY_NODE + '}', TRICKY_NODE),
    ('{"x":"alipay_system_oauth_token_response:{\\"a\\":1}","alipay_system_oauth_token_response" :  '
     + TRICKY_NODE + ' , "alipay_cert_sn":"abc","sign":"S1"}', TRICKY_NODE),
    ('{"alipay_system_oauth_token_response":"QkFTRTY0PT0=","sign":"S1"}', '"QkFTRTY0PT0="'),
    ('{"error_response":{"code":"40002","sub_code":"isv.code-invalid"},"sign":"S1"}',
     '{"code":"40002","sub_code":"isv.code-invalid"}'),
])
def test_extract_signed_content_exact_substring(body, expected):
    assert extract_signed_content(body, OAUTH) == (expected, "S1")


@pytest.mark.parametrize("body", [
    "", "<html>网关错误</html>", '{"other_response":{}}', '{"alipay_system_oauth_token_response":{"a":"}',
    '{"alipay_system_oauth_token_response":{},"alipay_system_oauth_token_response":{},"sign":"x"}',
    '{"alipay_system_oauth_token_response":{}} trailing',
])
def test_extract_signed_content_rejects_garbage(body):
    with pytest.raises(UpstreamError):
        extract_signed_content(body, OAUTH)


def _signed_body(node_text: str, private_pem: str, name: str = "alipay_system_oauth_token_response"):
    return f'{{"{name}":{node_text},"sign":"{rsa2_sign(node_text, private_pem)}"}}'


def test_verify_response_matches_sdk_and_handles_tricky_values(keys):
    plain = '{"code":"10000","msg":"Success","user_id":"2088102150477652"}'
    body = _signed_body(plain, keys["alipay_private"])
    sdk = _sdk(keys["app_private"], keys["alipay_public"])
    expected = sdk._verify_and_return_sync_response(body, "alipay_system_oauth_token_response")
    assert verify_response(body, OAUTH, keys["alipay_public"]) == expected
    tricky = verify_response(_signed_body(TRICKY_NODE, keys["alipay_private"]), OAUTH,
                             keys["alipay_public"])
    assert tricky["memo"] == 'a}"{b\\' and tricky["中文"] == "值"


def test_verify_response_rejects_bad_or_missing_signature(keys):
    body = _signed_body(TRICKY_NODE, keys["alipay_private"]).replace("10000", "10001", 1)
    with pytest.raises(UpstreamError):
        verify_response(body, OAUTH, keys["alipay_public"])
    other_private, _ = generate_rsa_keypair()
    with pytest.raises(UpstreamError):
        verify_response(_signed_body(TRICKY_NODE, other_private), OAUTH, keys["alipay_public"])
    with pytest.raises(UpstreamError):
        verify_response('{"alipay_system_oauth_token_response":{"user_id":"2088"},"sign":""}',
                        OAUTH, keys["alipay_public"])
    unsigned_error = '{"error_response":{"code":"40002","sub_code":"isv.invalid-signature"}}'
    assert verify_response(unsigned_error, OAUTH, keys["alipay_public"])["code"] == "40002"


def test_verify_response_encrypted_node_signed_with_quotes(keys):
    ciphertext = aes_encrypt('{"code":"10000","msg":"Success","open_id":"074a"}', keys["aes"])
    quoted = json.dumps(ciphertext)
    body = _signed_body(quoted, keys["alipay_private"])
    data = verify_response(body, OAUTH, keys["alipay_public"], aes_key_b64=keys["aes"])
    assert data["open_id"] == "074a"
    unquoted_sign = rsa2_sign(ciphertext, keys["alipay_private"])
    with pytest.raises(UpstreamError):
        verify_response(f'{{"alipay_system_oauth_token_response":{quoted},"sign":"{unquoted_sign}"}}',
                        OAUTH, keys["alipay_public"], aes_key_b64=keys["aes"])
    with pytest.raises(UpstreamError):
        verify_response(body, OAUTH, keys["alipay_public"])


# ---- Alipay AES -------------------------------------------------------------------------------

@pytest.mark.parametrize("plaintext", ["", "0123456789abcdef", '{"mobile":"13800138000","name":"张三"}'])
def test_aes_round_trip_matches_pycryptodomex(plaintext):
    key_b64 = base64.b64encode(secrets.token_bytes(16)).decode()
    oracle = OracleAES.new(base64.b64decode(key_b64), OracleAES.MODE_CBC, iv=bytes(16))
    expected = base64.b64encode(oracle.encrypt(oracle_pad(plaintext.encode(), 16))).decode()
    assert aes_encrypt(plaintext, key_b64) == expected
    assert aes_decrypt(expected, key_b64) == plaintext


def test_aes_decrypt_rejects_bad_padding_and_input():
    key_b64 = base64.b64encode(bytes(range(16))).decode()
    oracle = OracleAES.new(base64.b64decode(key_b64), OracleAES.MODE_CBC, iv=bytes(16))
    bad = base64.b64encode(oracle.encrypt(b"A" * 15 + b"\x02")).decode()
    for ciphertext in (bad, "not-base64", base64.b64encode(b"short").decode()):
        with pytest.raises(AlipayCryptoError):
            aes_decrypt(ciphertext, key_b64)


# ---- Alipay gateway client --------------------------------------------------------------------

@pytest.fixture
def gateway(keys):
    with FakeAlipayGateway(ALIPAY_APP_ID, keys["app_public"], keys["alipay_private"],
                           aes_key_b64=keys["aes"]) as fake:
        yield fake


@pytest.fixture
def alipay_client(gateway, keys):
    return AlipayClient(ALIPAY_APP_ID, keys["app_private"], keys["alipay_public"],
                        gateway.base_url, aes_key_b64=keys["aes"], timeout=(1, 0.5))


def test_oauth_token_returns_identity(gateway, alipay_client):
    gateway.extra_fields = {"memo": 'x}{"y\\', "nested": {"brace": "}}"}}
    gateway.on_auth_code("auth-ok", {"user_id": "2088102150477652", "open_id": "074a1CcTG"})
    identity = alipay_client.oauth_token("auth-ok")
    assert (identity.channel, identity.app_id, identity.open_id, identity.union_id) == (
        "alipay", ALIPAY_APP_ID, "074a1CcTG", "2088102150477652")
    assert identity.session_secret.startswith("authusrB")
    form = gateway.requests[0].form()
    assert form == {"grant_type": "authorization_code", "code": "auth-ok"}
    assert gateway.requests[0].query["method"] == OAUTH


@pytest.mark.parametrize("outcome, error, status", [
    (ali.INVALID, BadRequest, 400),
    (ali.LIMITED, TooManyRequests, 429),
    (ali.BUSY, ServiceUnavailable, 503),
    (ali.GARBLED, UpstreamError, 502),
    (ali.BAD_SIGN, UpstreamError, 502),
    (ali.Slow(1.5), ServiceUnavailable, 503),
])
def test_oauth_token_error_mapping(gateway, alipay_client, outcome, error, status):
    gateway.on_auth_code("c", outcome)
    with pytest.raises(error) as caught:
        alipay_client.oauth_token("c")
    assert caught.value.status == status


def test_oauth_token_retries_busy_once(gateway, alipay_client):
    gateway.on_auth_code("c", ali.BUSY, {"user_id": "2088000000000009"})
    assert alipay_client.oauth_token("c").open_id == "2088000000000009"
    assert len(gateway.requests) == 2


def test_request_signed_with_wrong_key_is_rejected_by_gateway(gateway, keys):
    wrong_private, _ = generate_rsa_keypair()
    client = AlipayClient(ALIPAY_APP_ID, wrong_private, keys["alipay_public"], gateway.base_url)
    gateway.on_auth_code("c", {"user_id": "2088000000000009"})
    with pytest.raises(UpstreamError) as caught:
        client.oauth_token("c")
    assert "isv.invalid-signature" in caught.value.detail


def test_response_from_impostor_is_rejected(gateway, keys):
    _, impostor_public = generate_rsa_keypair()
    client = AlipayClient(ALIPAY_APP_ID, keys["app_private"], impostor_public, gateway.base_url)
    gateway.on_auth_code("c", {"user_id": "2088000000000009"})
    with pytest.raises(UpstreamError):
        client.oauth_token("c")


def test_encrypted_call_round_trip(gateway, alipay_client):
    alipay_client.call("alipay.open.app.mini.templatemessage.send",
                       {"to_open_id": "074a", "user_template_id": "T1"}, encrypt=True)
    assert gateway.sent_messages == [{"to_open_id": "074a", "user_template_id": "T1"}]
    assert gateway.requests[0].query["encrypt_type"] == "AES"


def test_send_notice(gateway, alipay_client):
    alipay_client.send_notice("2088000000000009", "T1", {"keyword1": "已办结"})
    sent = gateway.sent_messages[0]
    assert sent["to_user_id"] == "2088000000000009"
    assert json.loads(sent["data"]) == {"keyword1": {"value": "已办结"}}


def test_decrypt_phone(gateway, alipay_client):
    payload = gateway.phone_payload("13800138000")
    assert alipay_client.decrypt_phone(payload) == "13800138000"
    assert alipay_client.phone_number(json.dumps(payload)) == "13800138000"


def test_decrypt_phone_rejects_tampering(gateway, alipay_client, keys):
    payload = gateway.phone_payload("13800138000")
    unquoted = {**payload, "sign": rsa2_sign(payload["response"], keys["alipay_private"])}
    other = gateway.phone_payload("13900139000")
    for forged in (unquoted, {**payload, "response": other["response"]}, {**payload, "sign_type": "RSA"}):
        with pytest.raises(BadRequest):
            alipay_client.decrypt_phone(forged)
    with pytest.raises(UpstreamError):
        alipay_client.decrypt_phone(gateway.phone_payload("", code="40006"))


def test_clients_satisfy_channel_adapter(wx, alipay_client):
    assert isinstance(wx, ChannelAdapter) and isinstance(alipay_client, ChannelAdapter)
