"""The micro benchmarks of `make bench`, in one process each: our SD-JWT verifier beside the sd-jwt library,
the search index at growing sizes, the CLI's start-up beside bare Flask, and access-token issue and check."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from .harness import Settings
from .loadgen import LoadgenError, log
from .setup_data import Deployment


def micro_sdjwt(settings: Settings) -> dict[str, Any]:
    """Our SD-JWT VC presentation verifier vs the `sd-jwt` library on the same presentation."""
    from jwcrypto.jwk import JWK
    from sd_jwt.verifier import SDJWTVerifier

    from app.wallet.sdjwt import verify_presentation
    from .bench_sdjwt import AUD, KID, NONCE, build_presentation, ops_per_second

    now = int(time.time())
    presentation, issuer_public = build_presentation(now)
    issuer_keys, issuer_jwk = {KID: issuer_public}, JWK.from_pyca(issuer_public)

    def ours():
        return verify_presentation(presentation, issuer_keys=issuer_keys, expected_aud=AUD,
                                   expected_nonce=NONCE, now=now).payload

    def library():
        return SDJWTVerifier(presentation, lambda iss, header: issuer_jwk, AUD, NONCE).get_verified_payload()

    if ours() != library():
        raise LoadgenError("our verifier and the sd-jwt library disagree on the payload")
    ours_rates, library_rates = [], []
    for _ in range(settings.sdjwt_rounds):
        ours_rates.append(ops_per_second(ours, settings.sdjwt_iterations))
        library_rates.append(ops_per_second(library, settings.sdjwt_iterations))
    ours_ops, library_ops = statistics.median(ours_rates), statistics.median(library_rates)
    result = {"presentation_chars": len(presentation), "rounds": settings.sdjwt_rounds,
              "iterations": settings.sdjwt_iterations, "ours_ops": ours_ops, "library_ops": library_ops,
              "ratio": ours_ops / library_ops}
    log(f"  sd-jwt verification: ours {ours_ops:.0f}/s, sd-jwt library {library_ops:.0f}/s "
        f"({result['ratio']:.2f}x)")
    return result


def micro_search(settings: Settings) -> dict[str, Any]:
    """SearchIndex build time, memory and query latency at growing catalogue sizes (bench_search.run)."""
    from . import bench_search
    rows = bench_search.run(settings.search_sizes, settings.search_rounds, False)
    return {"rounds": settings.search_rounds, "queries": len(bench_search.QUERIES), "rows": rows}


def micro_cli(settings: Settings) -> dict[str, Any]:
    """`flask --app wsgi --help` beside the same command on a bare Flask app (bench_cli.run)."""
    from . import bench_cli
    result = bench_cli.run(settings.cli_rounds)
    log(f"  flask --help: app {result['app']['wall_s']:.2f} s, bare Flask {result['floor']['wall_s']:.2f} s")
    return result


def micro_tokens(settings: Settings, dep: Deployment) -> dict[str, Any]:
    """app.security.tokens: issue (ES256 sign) and check (verify + Redis revocation lookup)."""
    from app.security import tokens
    app = dep.app()
    with app.test_request_context():
        token, _ = tokens.issue_access_token("p_bench0000000000000000", roles=["person"])
        tokens.decode_access_token(token)

        def rate(func: Callable[[], object]) -> float:
            rates = []
            for _ in range(settings.token_rounds):
                t0 = time.perf_counter()
                for _ in range(settings.token_iterations):
                    func()
                rates.append(settings.token_iterations / (time.perf_counter() - t0))
            return statistics.median(rates)

        issue = rate(lambda: tokens.issue_access_token("p_bench0000000000000000", roles=["person"]))
        check = rate(lambda: tokens.decode_access_token(token))
    log(f"  tokens: issue {issue:.0f}/s, check {check:.0f}/s")
    return {"issue_ops": issue, "check_ops": check, "iterations": settings.token_iterations,
            "rounds": settings.token_rounds, "token_chars": len(token)}

