"""Signed URLs of the api's own file routes: `GET /v1/files/{id}/content` (download) and
`PUT /v1/files/{id}/upload` (a volume Bucket's direct upload).

A signed URL carries every parameter it was signed with, plus `exp` (unix seconds) and
`sig`: the unpadded base64url HMAC-SHA256, under a key derived from the Stack's
AUTH_ENCRYPTION_KEY, of

    stackyard-url-v1 \\n <purpose> \\n <file id> \\n <exp> \\n <canonical params>

where the canonical params are the other query parameters, percent-encoded, sorted, as
`k=v` joined by `&`. Changing, adding or removing any parameter (a width, the bucket), the
file id, the expiry or the purpose invalidates the signature: a download URL cannot be
replayed as an upload URL, nor a thumbnail's URL as the original's. The purpose is not in
the URL: the route that verifies says which one it expects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final, Literal
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .problems import SignatureExpired, SignatureInvalid

SIGNING_INFO: Final = b"stackyard storage url signing v1"
EXP, SIG = "exp", "sig"
Purpose = Literal["download", "upload"]
DOWNLOAD: Final[Purpose] = "download"
UPLOAD: Final[Purpose] = "upload"

_VERSION = "stackyard-url-v1"
_EXP_PATTERN = re.compile(r"^[0-9]{1,12}$")


@lru_cache(maxsize=8)
def signing_key(encryption_key_b64: str) -> bytes:
    """The URL signing key: HKDF-SHA256 of the Stack's encryption key (standard base64),
    so the encryption key itself never signs anything. Derived once per key (every signed
    URL the api hands out or serves needs it)."""
    try:
        material = base64.b64decode(encryption_key_b64, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("the encryption key is not base64") from error
    if len(material) < 16:
        raise ValueError("the encryption key is shorter than 16 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SIGNING_INFO).derive(material)


def canonical(params: Mapping[str, str]) -> str:
    """The parameters as signed: percent-encoded `k=v`, sorted, joined by `&` (encoding
    keeps `a=1&b=2` as one value apart from two parameters)."""
    return "&".join(sorted(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items()))


class UrlSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a URL signing key has at least 16 bytes")
        self._key = key

    def sign(
        self, file_id: str, params: Mapping[str, str], expires_at: int, *, purpose: Purpose = DOWNLOAD
    ) -> dict[str, str]:
        """The query of a signed URL: `params` plus `exp` and `sig`."""
        if EXP in params or SIG in params:
            raise ValueError("exp and sig are added by the signer")
        exp = str(int(expires_at))
        return {**params, EXP: exp, SIG: self._signature(purpose, file_id, exp, params)}

    def verify(
        self, file_id: str, query: Mapping[str, str], now: float, *, purpose: Purpose = DOWNLOAD
    ) -> dict[str, str]:
        """The signed parameters (the query without `exp` and `sig`); SignatureInvalid when
        anything differs from what was signed, SignatureExpired once `exp` is past."""
        exp, sig = query.get(EXP), query.get(SIG)
        if exp is None or sig is None:
            raise SignatureInvalid("the URL is not signed (exp and sig are missing)")
        params = {k: v for k, v in query.items() if k not in (EXP, SIG)}
        if not _EXP_PATTERN.match(exp):
            raise SignatureInvalid("the URL's signature does not match it")
        expected = self._signature(purpose, file_id, exp, params)
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            raise SignatureInvalid("the URL's signature does not match it")
        if now >= int(exp):
            raise SignatureExpired("the signed URL has expired; ask for a new one")
        return params

    def _signature(self, purpose: str, file_id: str, exp: str, params: Mapping[str, str]) -> str:
        message = "\n".join((_VERSION, purpose, quote(file_id, safe=""), exp, canonical(params))).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
