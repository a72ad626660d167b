"""/v1/push (web push keys and subscriptions). Owner: helper C."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["push"])
