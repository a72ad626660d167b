"""The console's Users page (owned by its page helper; a stub until filled)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/users", include_in_schema=False)
