"""GET /v1/config: which configuration this process applies (hash and generation, no secret)."""

from __future__ import annotations

from fastapi import APIRouter
from stackyard.runtime_contract import AppliedConfigInfo

from ..deps import RuntimeDep
from ..errors import problem_responses

router = APIRouter(prefix="/v1/config", tags=["config"])


@router.get(
    "",
    response_model=AppliedConfigInfo,
    response_model_by_alias=True,
    summary="The configuration this process applies",
    responses=problem_responses(429, 503),
)
async def get_config(runtime: RuntimeDep) -> AppliedConfigInfo:
    return AppliedConfigInfo.model_validate(runtime.describe_config())
