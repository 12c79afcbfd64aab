"""Load row of device presentations: offline SD-JWTs the holder's phone makes with its own key.

The holder registers a P-256 key (POST /wallet/devices) and binds a license to it (POST
/wallet/licenses/{id}/bindings); the "phone" (this process) then makes presentations of the
device-bound credential with that key, each with its own nonce and a fresh KB-JWT `iat` (the
server accepts KB-JWTs up to 300 s old and claims each nonce once), and a verifier posts them to
/verifications. Unlike an online code this reads the database (license, binding and device rows).
"""
from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from .loadgen import log, run_wrk
from .setup_data import API, SetupSkipped, bearer, client_token, json_line, write_lines

if TYPE_CHECKING:  # pragma: no cover
    from .app_targets import AppTargets


def _device_credential(targets: "AppTargets"):
    """(device key, device-bound credential with the default disclosures, platform audience)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from app.security.jose import public_jwk
    from app.wallet.sdjwt import select_disclosures
    license = targets.licenses()[0]
    token = targets.holder_token()
    key = ec.generate_private_key(ec.SECP256R1())
    status, device = targets.api.request("POST", f"{API}/wallet/devices",
                                         {"name": "压测手机", "jwk": public_jwk(key.public_key())}, bearer(token))
    if status == 404:
        raise SetupSkipped("POST /api/v1/wallet/devices answers 404 (device keys not built yet)")
    if status != 201:
        raise SetupSkipped(f"device registration answers {status}: {str(device)[:200]}")
    status, bound = targets.api.request("POST", f"{API}/wallet/licenses/{license['license_id']}/bindings",
                                        {"device_id": device["device_id"]}, bearer(token))
    if status != 200:
        raise SetupSkipped(f"binding answers {status}: {str(bound)[:200]}")
    selected = select_disclosures(bound["sd_jwt"], list(license.get("default_disclose") or ["name"]))
    audience = targets.dep.app().config["PUBLIC_BASE_URL"].rstrip("/")
    return key, selected, audience, license["name"]


def device_verification(targets: "AppTargets") -> None:
    from app.wallet.sdjwt import present
    s = targets.settings
    key, selected, audience, name = _device_credential(targets)
    verifier = client_token(targets.dep, targets.api, "verifier")
    url, threads, expect = targets.server.url(f"{API}/verifications"), str(s.wrk_threads), '"valid"%s*:%s*true'
    wrk_common = dict(connections=s.connections, threads=s.wrk_threads, script="onetime.lua",
                      headers=[f"Authorization: Bearer {verifier}"])

    def presentation() -> str:
        return present(sd_jwt_with_selected=selected, holder_key=key, aud=audience, nonce=secrets.token_urlsafe(16),
                       iat=int(time.time()), exp=None)

    def bodies(count: int) -> list[str]:
        return [json_line({"sd_jwt": presentation()}) for _ in range(count)]

    status, body = targets.api.request("POST", f"{API}/verifications", {"sd_jwt": presentation()}, bearer(verifier))
    if status != 200 or not (isinstance(body, dict) and body.get("valid") is True):
        raise SetupSkipped(f"verification of a device presentation answers {status}: {str(body)[:200]}")
    t0 = time.monotonic()
    calibration = write_lines(targets.data_dir / "device_calibration.txt", bodies(300))
    made_rate = 300 / max(0.001, time.monotonic() - t0)
    probe = run_wrk(url, duration=1, script_args=[str(calibration), threads, expect], **wrk_common)
    rate = max(probe.rps, 20.0)
    warm_n = int(rate * s.warmup * 2) + 20
    main_n = min(s.verification_pool, int(rate * s.duration * 2) + 100)
    fresh = bodies(warm_n + main_n)
    log(f"  device presentations: made at {made_rate:.0f}/s in-process; calibration {probe.rps:.0f} "
        f"verifications/s -> {len(fresh)} fresh ones ({warm_n} warm-up)")
    warm = write_lines(targets.data_dir / "device_warm.txt", fresh[:warm_n])
    main = write_lines(targets.data_dir / "device_main.txt", fresh[warm_n:])
    targets.runner.measure("device_verification", "POST /api/v1/verifications {sd_jwt} (device key, verifier token)",
                           url, script="onetime.lua", script_args=[str(main), threads, expect],
                           warm_args=[str(warm), threads, expect], headers=wrk_common["headers"],
                           server=targets.server,
                           notes=[f"each request a different presentation of one device-bound {name} "
                                  f"({main_n} in the measured pool), nonce claimed once, KB-JWT fresh"])
