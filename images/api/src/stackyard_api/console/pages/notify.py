"""The console's Notify page (owned by its page helper; a stub until filled)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/notify", include_in_schema=False)
