"""The built-in job functions of the storage capability.

`stackyard.storage.scan` `{"bucket": B, "fileId": ID}`: the api enqueues it on the queue of
the Bucket's spec.scan.queue after an upload to a Bucket with spec.scan.enabled (the file
is then `scanning`, never served). The worker streams the object to clamd (INSTREAM) and
marks the file: clean -> `available`; infected -> `quarantined`, its object moved to
`quarantine/<id>`, the signature recorded in the file's `scan`; larger than clamd's
StreamMaxLength -> `quarantined` too (never served), with `scan` {result: unscannable,
reason}, and the job ends: another attempt would meet the same limit. When clamd cannot
give a verdict (unreachable, no answer within spec.scan.timeout, an ERROR reply) the job
fails and its queue retries it with backoff; the file stays `scanning` meanwhile, and after
the last attempt the job waits in the dead letters (retry it from there once clamd is back).

`stackyard.storage.retention` `{"bucket": B}`: run by the Schedule `<bucket>-retention`
the operator makes when spec.retention is set. It sweeps the Bucket (expired files,
abandoned uploads, interrupted deletes) and records the run in the Bucket's
status.lastRetention {at, deleted, bytes, error}. A failed sweep fails the job (retried).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from stackyard.jobs import FunctionRegistry, JobContext, NonRetryable
from stackyard.resources.base import duration_seconds
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus
from stackyard.storage.files import Buckets
from stackyard.storage.problems import FileNotFound
from stackyard.storage.retention import retention_run
from stackyard.storage.scan import Clamd, ScanUnavailable

__all__ = ["RETENTION_FUNCTION", "SCAN_FUNCTION", "ScanFailed", "StorageJobs", "storage_functions"]

log = logging.getLogger(__name__)

SCAN_FUNCTION = "stackyard.storage.scan"
RETENTION_FUNCTION = "stackyard.storage.retention"
MAX_ERROR = 2048


class ScanFailed(Exception):
    """No verdict this time (clamd unreachable, silent, an ERROR reply): retried."""


class SweepFailed(Exception):
    """The retention sweep stopped (storage or database away): retried."""


def storage_functions(runtime: Runtime, cluster: ClusterStatus, buckets: Buckets | None = None) -> FunctionRegistry:
    """The registry holding the storage job functions (the worker includes it)."""
    jobs = StorageJobs(runtime, cluster, buckets)
    registry = FunctionRegistry()
    registry.add(SCAN_FUNCTION, jobs.scan)
    registry.add(RETENTION_FUNCTION, jobs.retention)
    return registry


class StorageJobs:
    def __init__(self, runtime: Runtime, cluster: ClusterStatus, buckets: Buckets | None = None) -> None:
        self.runtime = runtime
        self.cluster = cluster
        self._buckets = buckets

    @property
    def buckets(self) -> Buckets:
        """The file services, made on first use (the config is there by then)."""
        if self._buckets is None:
            self._buckets = Buckets(self.runtime)
        return self._buckets

    def _bucket(self, payload: Any, *fields: str) -> tuple[str, Any, list[str]]:
        if not isinstance(payload, dict):
            payload = {}
        values = [payload.get(name) for name in ("bucket", *fields)]
        if not all(isinstance(value, str) and value for value in values):
            shape = ", ".join(f'"{name}": "…"' for name in ("bucket", *fields))
            raise NonRetryable(f"the payload must be {{{shape}}}")
        name = values[0]
        spec = self.runtime.config.config.buckets.get(name)
        if spec is None:
            raise NonRetryable(f"no Bucket {name!r} in the Stack's config")
        return name, spec, values[1:]

    async def scan(self, ctx: JobContext, payload: Any) -> dict[str, Any]:
        name, spec, (file_id,) = self._bucket(payload, "fileId")
        service = self.buckets.service(name)
        try:
            record = await service.get(file_id)
        except FileNotFound:
            return {"fileId": file_id, "skipped": "deleted"}  # deleted while it waited: nothing to scan
        if record.state != "scanning":  # scanned by an earlier attempt that failed after marking
            return {"fileId": file_id, "skipped": record.state}
        scanner = Clamd(spec.scan.address, timeout=duration_seconds(spec.scan.timeout))
        try:
            result = await scanner.instream(service.storage.read(record.key))
        except ScanUnavailable as exc:
            log.warning(
                "scan of file %s in Bucket %s: no verdict (attempt %d of %d): %s",
                file_id,
                name,
                ctx.attempt,
                ctx.max_attempts,
                exc,
            )
            raise ScanFailed(str(exc)) from None
        # infected or unscannable: moved to quarantine/
        await service.mark_scanned(file_id, result.result, result.signature, result.reason)
        if result.unscannable:
            log.warning("scan of file %s in Bucket %s: unscannable (%s), quarantined", file_id, name, result.reason)
            return {"fileId": file_id, "result": result.result, "reason": result.reason}
        log.info("scan of file %s in Bucket %s: %s", file_id, name, result.signature or result.result)
        return {"fileId": file_id, "result": result.result, "signature": result.signature}

    async def retention(self, ctx: JobContext, payload: Any) -> dict[str, Any]:
        name, spec, _ = self._bucket(payload)
        if spec.retention is None:
            raise NonRetryable(f"Bucket {name!r} has no spec.retention")
        service = self.buckets.service(name)
        try:
            swept = await service.sweep(datetime.now(UTC))
        except Exception as exc:
            error = self._scrub(f"{type(exc).__name__}: {exc}", self.runtime.config.credentials)[:MAX_ERROR]
            log.warning("retention sweep of Bucket %s failed: %s", name, error)
            await self._report(name, retention_run(datetime.now(UTC), error=error))
            raise SweepFailed(error) from None
        deleted, freed = int(swept.deleted), int(swept.bytes)
        log.info("retention sweep of Bucket %s: %d files deleted, %d bytes freed", name, deleted, freed)
        await self._report(name, retention_run(datetime.now(UTC), deleted, freed))
        return {"bucket": name, "deleted": deleted, "bytes": freed}

    async def _report(self, name: str, run: dict[str, Any]) -> None:
        """Merge the run into the Bucket's status.lastRetention (where the config comes from
        a cluster). A status that cannot be written does not fail a sweep that was made."""
        if not self.cluster.enabled:
            return
        try:
            await self.cluster.merge("buckets", name, {"status": {"lastRetention": run}})
        except ApiException as exc:
            log.warning("status.lastRetention of Bucket %s not written: %s %s", name, exc.status, exc.reason)

    @staticmethod
    def _scrub(text: str, credentials: Mapping[str, str]) -> str:
        for secret in credentials.values():
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return text
