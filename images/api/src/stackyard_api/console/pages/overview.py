"""The console's Overview page (/console): the Stack at a glance."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...deps import RuntimeDep
from ..session import ConsoleDep, render

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def overview(request: Request, session: ConsoleDep, runtime: RuntimeDep) -> Response:
    return render(request, "console/overview.html", config=runtime.describe_config())
