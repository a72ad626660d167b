"""Leader election on a coordination.k8s.io Lease, as Kubernetes' own controllers do.

Several operator replicas may run; one holds the Lease and reconciles, the others wait
and take over within `lease_seconds` of the leader going away. A leader that cannot
renew before its Lease expires stops at once (its pod restarts as a follower), so two
replicas never reconcile together.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class LeaseLost(RuntimeError):
    pass


class LeaderElection:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
        retry_seconds: float = 2.0,
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self.retry_seconds = retry_seconds  # how often a follower looks at the Lease

    async def _try_acquire(self) -> bool:
        now = _now()
        try:
            lease = await self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(now, now, transitions=0),
            )
            try:
                await self.api.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as create_exc:
                if create_exc.status == 409:  # another replica created it first
                    return False
                raise
        spec = lease.spec
        held_by_us = spec.holder_identity == self.identity
        renewed = spec.renew_time or spec.acquire_time or now
        expired = renewed + timedelta(seconds=spec.lease_duration_seconds or self.lease_seconds) < now
        if not held_by_us and not expired and spec.holder_identity:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if held_by_us else 1)
        lease.spec = self._spec(spec.acquire_time if held_by_us else now, now, transitions)
        try:  # the resourceVersion in `lease` makes this a compare-and-swap
            await self.api.replace_namespaced_lease(self.name, self.namespace, lease)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def _spec(self, acquired: datetime, renewed: datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.lease_seconds,
            acquire_time=acquired,
            renew_time=renewed,
            lease_transitions=transitions,
        )

    async def acquire(self) -> None:
        """Block until this replica holds the Lease."""
        announced = False
        while not await self._try_acquire():
            if not announced:
                log.info("waiting to lead: Lease %s/%s is held by another replica", self.namespace, self.name)
                announced = True
            await asyncio.sleep(self.retry_seconds)
        log.info("leading: holding Lease %s/%s as %s", self.namespace, self.name, self.identity)

    async def keep(self) -> None:
        """Renew until the Lease is lost; then raise LeaseLost."""
        last_renewed = _now()
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                if await self._try_acquire():
                    last_renewed = _now()
                    continue
                raise LeaseLost(f"Lease {self.namespace}/{self.name} was taken by another replica")
            except ApiException as exc:
                log.warning("cannot renew Lease %s/%s: %s %s", self.namespace, self.name, exc.status, exc.reason)
            except OSError as exc:
                log.warning("cannot renew Lease %s/%s: %s", self.namespace, self.name, exc)
            if _now() - last_renewed > timedelta(seconds=self.lease_seconds):
                raise LeaseLost(f"Lease {self.namespace}/{self.name} expired before it could be renewed")

    async def release(self) -> None:
        """Give the Lease up on a clean stop, so that a follower takes over at once."""
        try:
            lease = await self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            await self.api.replace_namespaced_lease(self.name, self.namespace, lease)
            log.info("released Lease %s/%s", self.namespace, self.name)
        except (ApiException, OSError) as exc:  # it expires on its own anyway
            log.warning("cannot release Lease %s/%s: %s", self.namespace, self.name, exc)
