"""The console's Jobs page (owned by its page helper; a stub until filled)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/jobs", include_in_schema=False)
