"""The console's Emails page (owned by its page helper; a stub until filled)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/emails", include_in_schema=False)
