"""Access-token verifications per second with authlib's JWT (authlib.jose) and joserfc
(authlib's successor library), for bench/auth.py; runs in .venv-bench.

    python jwt_peers.py ALG ISSUER COUNT ROUNDS < {"token": ..., "public_pem": ...}

Each library verifies the same token with the same public key (parsed once, as a verifier
keeps it), only the token's algorithm allowed, and checks what stackyard checks: the
signature, issuer and audience required and equal, exp/nbf/iat. Prints one JSON line:
{"authlib": verifications/s, "joserfc": ..., "versions": {...}}, each the best of ROUNDS.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version

warnings.simplefilter("ignore")  # authlib.jose says it is deprecated in favour of joserfc

from authlib.jose import JsonWebKey, JsonWebToken  # noqa: E402
from joserfc import jwt as joserfc_jwt  # noqa: E402
from joserfc.jwk import ECKey, OKPKey, RSAKey  # noqa: E402


def authlib_verify(token: str, pem: bytes, alg: str, issuer: str) -> Callable[[], object]:
    key = JsonWebKey.import_key(pem)
    jwt = JsonWebToken([alg])
    options = {"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": issuer}}

    def verify() -> object:
        claims = jwt.decode(token, key, claims_options=options)
        claims.validate(leeway=30)
        return claims

    return verify


def joserfc_verify(token: str, pem: bytes, alg: str, issuer: str) -> Callable[[], object]:
    key = {"EdDSA": OKPKey, "ES256": ECKey, "RS256": RSAKey}[alg].import_key(pem)
    registry = joserfc_jwt.JWTClaimsRegistry(
        leeway=30, iss={"essential": True, "value": issuer}, aud={"essential": True, "value": issuer}
    )

    def verify() -> object:
        decoded = joserfc_jwt.decode(token, key, algorithms=[alg])
        registry.validate(decoded.claims)
        return decoded

    return verify


def rate(op: Callable[[], object], count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        op()
    return count / (time.perf_counter() - t0)


def main() -> None:
    alg, issuer, count, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    given = json.load(sys.stdin)
    token, pem = given["token"], given["public_pem"].encode()
    contenders = {
        "authlib": authlib_verify(token, pem, alg, issuer),
        "joserfc": joserfc_verify(token, pem, alg, issuer),
    }
    for op in contenders.values():
        rate(op, max(count // 10, 100))
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(rounds):
        for name, op in contenders.items():
            best[name] = max(best[name], rate(op, count))
    versions = {name: version(name) for name in ("authlib", "joserfc", "cryptography")}
    print(json.dumps(best | {"versions": versions}))


if __name__ == "__main__":
    main()
