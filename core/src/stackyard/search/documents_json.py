"""Documents as JSON bytes, for the index's stored source and the task store's payloads.

orjson is fast but refuses integers beyond 64 bits, which JSON allows and which a client may
send (Meilisearch takes them, as numbers). Such a document is written by the standard json
module instead of being answered with a 500; orjson reads the number back as a float, as
Meilisearch returns it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
