"""/v1/feed (the in-app feed and its SSE stream). Owner: helper B."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["feed"])
