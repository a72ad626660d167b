"""/v1/webhooks (endpoints, deliveries, replay). Owner: helper D."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
