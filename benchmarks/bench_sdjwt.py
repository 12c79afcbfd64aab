"""Benchmark: our SD-JWT VC verifier vs the OpenWallet `sd-jwt` library on the same presentation."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jwcrypto.jwk import JWK  # noqa: E402
from sd_jwt.verifier import SDJWTVerifier  # noqa: E402

from app.security.jose import generate_es256_key, public_jwk  # noqa: E402
from app.wallet.sdjwt import issue_sd_jwt_vc, present, select_disclosures, verify_presentation  # noqa: E402

AUD, NONCE, KID = "https://verifier.jinan.gov.cn", "bench-nonce", "bench-issuer"
CLAIMS = {
    "name": "张三",
    "id_number": "370102199001011234",
    "birth_date": "1990-01-01",
    "address": {"province": "山东省", "city": "济南市", "street": "经十路 1 号"},
    "valid_until": "2035-01-01",
}


def build_presentation(now: int) -> tuple[str, object]:
    issuer, holder = generate_es256_key(), generate_es256_key()
    sd_jwt = issue_sd_jwt_vc(
        issuer_key=issuer, kid=KID, iss="https://wallet.sd.gov.cn/issuer", vct="urn:cn:sd:license:resident-id",
        claims=CLAIMS, always_visible={"license_type": "居民身份证"}, iat=now, exp=now + 3600,
        holder_public_jwk=public_jwk(holder.public_key()),
        status={"status_list": {"idx": 7, "uri": "https://wallet.sd.gov.cn/statuslists/1"}},
    )
    selected = select_disclosures(sd_jwt, ["name", "birth_date", "address"])
    presentation = present(
        sd_jwt_with_selected=selected, holder_key=holder, aud=AUD, nonce=NONCE, iat=now, exp=now + 300
    )
    return presentation, issuer.public_key()


def ops_per_second(func: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        func()
    return iterations / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--iterations", type=int, default=2000)
    parser.add_argument("-r", "--rounds", type=int, default=5)
    args = parser.parse_args()

    now = int(time.time())
    presentation, issuer_public = build_presentation(now)
    issuer_keys = {KID: issuer_public}
    issuer_jwk = JWK.from_pyca(issuer_public)

    def ours() -> dict:
        result = verify_presentation(
            presentation, issuer_keys=issuer_keys, expected_aud=AUD, expected_nonce=NONCE, now=now
        )
        return result.payload

    def library() -> dict:
        return SDJWTVerifier(presentation, lambda iss, header: issuer_jwk, AUD, NONCE).get_verified_payload()

    assert ours() == library(), "verifiers disagree"
    ours_rates, library_rates = [], []
    for _ in range(args.rounds):
        ours_rates.append(ops_per_second(ours, args.iterations))
        library_rates.append(ops_per_second(library, args.iterations))
    ours_median, library_median = statistics.median(ours_rates), statistics.median(library_rates)
    print(f"presentation: {len(presentation)} chars, {args.rounds} rounds x {args.iterations} iterations")
    print(f"ours:    {ours_median:9.0f} ops/s")
    print(f"sd-jwt:  {library_median:9.0f} ops/s")
    print(f"ratio:   {ours_median / library_median:.2f}x")


if __name__ == "__main__":
    main()
