"""What workers know of each Bucket, written to its status: the Reachable condition and
status.reachable {roundTripMs, checkedAt}.

Every 60 seconds, and at once when the config changes, each Bucket of the config is
checked in turn with its storage's `check()` (write, read back and delete a small probe
object):

| what happened                                               | Reachable | reason        |
|-------------------------------------------------------------|-----------|---------------|
| the probe was written, read and deleted                     | True      | Reachable     |
| no answer within 15 s, connection refused or lost           | False     | Unreachable   |
| refused: no such bucket, credentials refused or absent,     | False     | Misconfigured |
| permission denied; or the spec cannot make a storage at all |           |               |

status.reachable is written only when the storage was reached (it says when it last was).
A status is written when something else than the timestamp and round trip changed, and at
least every 5 minutes; several replicas write the same facts, the last one wins. Messages
name the backend (S3 bucket and prefix, or the volume claim), never an endpoint's
credentials or keys, and are scrubbed of the Stack's credential values once more.

    reporter = BucketStatusReporter(runtime, cluster)
    task = asyncio.create_task(reporter.run(stop))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from stackyard.resources.bucket import BucketSpec
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus, Condition, PeriodicStatusReporter, now_iso
from stackyard.storage.backend import Storage
from stackyard.storage.problems import StorageUnavailable

__all__ = [
    "CHECK_INTERVAL",
    "REWRITE_INTERVAL",
    "BucketStatusReporter",
    "classify",
    "describe",
    "reachable_condition",
    "significant",
]

log = logging.getLogger(__name__)

CHECK_INTERVAL = 60.0
"""Seconds between two checks of an unchanged config."""
REWRITE_INTERVAL = 300.0
"""Most seconds between two writes of an unchanged status (its timestamp and round trip)."""
CHECK_TIMEOUT = 15.0
"""Most seconds for one Bucket's probe."""
MESSAGE_LIMIT = 1024

StorageFor = Callable[[str, BucketSpec, Mapping[str, str]], Storage]


def describe(spec: BucketSpec) -> str:
    """The backend, as a person finds it: `S3 bucket uploads (prefix app/)` or `volume claim files`."""
    s3, volume = spec.backend.s3, spec.backend.volume
    if s3 is not None:
        return f"S3 bucket {s3.bucket}" + (f" (prefix {s3.prefix}/)" if s3.prefix else "")
    assert volume is not None  # one of the two, by BucketBackend's validation
    return f"volume claim {volume.claim_name}" + (f" (directory {volume.sub_path})" if volume.sub_path else "")


MISCONFIGURED = (
    "NoSuchBucket",
    "InvalidBucketName",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthorizationHeaderMalformed",
    "no credentials",
    "credential",
    "Permission denied",
    "Read-only file system",
)
"""Words in a failure that say the server answered and refused: the spec, the credentials or
the volume's permissions need a person (Misconfigured), not patience (Unreachable)."""


def classify(message: str) -> str:
    """The Reachable reason for a failed check's message."""
    lowered = message.lower()
    return "Misconfigured" if any(word.lower() in lowered for word in MISCONFIGURED) else "Unreachable"


def reachable_condition(ok: bool, reason: str, message: str) -> Condition:
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return {
        "type": "Reachable",
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_iso(),
    }


def significant(view: Mapping[str, Any]) -> dict[str, Any]:
    """`view` without what changes on every check: timestamps and the round trip (also in
    the message of Reachable=True)."""
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} | ({"message": None} if c["status"] == "True" else {})
        for c in view.get("conditions", [])
    ]
    return {"conditions": conditions, "reached": "reachable" in view}


def _default_storage_for(name: str, spec: BucketSpec, credentials: Mapping[str, str]) -> Storage:
    from stackyard.storage.factory import storage_for  # aiobotocore is imported only where used

    return storage_for(name, spec, credentials)


class BucketStatusReporter(PeriodicStatusReporter[BucketSpec]):
    """Checks every Bucket of the config and writes its status (see the module)."""

    kind, plural = "Bucket", "buckets"
    ok_word, failed_word = "reachable", "not reachable"
    write_timeout = CHECK_TIMEOUT
    log = log

    def __init__(
        self,
        runtime: Runtime,
        cluster: ClusterStatus,
        *,
        interval: float = CHECK_INTERVAL,
        rewrite_interval: float = REWRITE_INTERVAL,
        timeout: float = CHECK_TIMEOUT,
        storage_for: StorageFor | None = None,
    ) -> None:
        super().__init__(runtime, cluster, interval=interval, rewrite_interval=rewrite_interval)
        self.timeout = timeout
        self._storage_for = storage_for or _default_storage_for

    def specs(self) -> Mapping[str, BucketSpec]:
        return self.runtime.config.config.buckets

    def _significant(self, view: Mapping[str, Any]) -> dict[str, Any]:
        return significant(view)

    async def check(self, name: str, spec: BucketSpec) -> dict[str, Any]:
        """The status fields of one Bucket: Reachable and (when reached) status.reachable."""
        what = describe(spec)
        credentials = self.runtime.config.credentials
        try:
            storage = self._storage_for(name, spec, credentials)
        except Exception as exc:  # missing credentials, settings the client refuses
            condition = reachable_condition(False, "Misconfigured", f"{what}: {self._error(exc)}")
            return self._noted(name, {"conditions": [condition]})
        view: dict[str, Any]
        try:
            started = time.perf_counter()
            async with asyncio.timeout(self.timeout):
                await storage.check()
            round_trip = (time.perf_counter() - started) * 1000
        except TimeoutError:
            message = f"{what}: no answer within {self.timeout:g} s"
            view = {"conditions": [reachable_condition(False, "Unreachable", message)]}
        except StorageUnavailable as exc:  # its detail names the backend and the reason already
            message = self._error(exc)
            view = {"conditions": [reachable_condition(False, classify(message), message)]}
        except Exception as exc:  # anything else the backend raised: not reached either
            log.debug("checking Bucket %s raised", name, exc_info=exc)
            view = {"conditions": [reachable_condition(False, "Unreachable", f"{what}: {self._error(exc)}")]}
        else:
            message = f"{what}: probe written, read and deleted in {round_trip:.1f} ms"
            view = {
                "conditions": [reachable_condition(True, "Reachable", message)],
                "reachable": {"roundTripMs": round(round_trip, 3), "checkedAt": now_iso()},
            }
        finally:
            with contextlib.suppress(Exception):
                await storage.close()
        return self._noted(name, view)

    def _noted(self, name: str, view: dict[str, Any]) -> dict[str, Any]:
        self._note(name, view["conditions"][0])
        return view

    def _error(self, exc: BaseException) -> str:
        """The reason in an exception, without any credential value of the Stack."""
        detail = getattr(exc, "detail", None)
        text: str = detail if isinstance(detail, str) and detail else (str(exc) or type(exc).__name__)
        if isinstance(exc, KeyError):
            text = f"missing credential {text}"
        return self._scrub(text)
