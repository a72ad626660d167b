"""Probes: /healthz (the process lives) and /readyz (config loaded, Redis answers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from stackyard.runtime_contract import Health

from ..deps import RuntimeDep

router = APIRouter(tags=["health"])

__all__ = ["Health", "router"]


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness: config loaded and Redis reachable",
    responses={503: {"model": Health, "description": "Not ready; `checks` says why"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    readiness = await runtime.readiness()
    body = Health(status="ok" if readiness.ready else "not ready", checks=readiness.checks)
    return JSONResponse(body.model_dump(), status_code=200 if readiness.ready else 503)
