"""/v1/notify (trigger, runs, preferences). Owner: helper E."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["notifications"])
