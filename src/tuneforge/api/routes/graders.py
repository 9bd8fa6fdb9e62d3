"""`POST /v1/fine_tuning/alpha/graders/validate` and `/run`: try a grader on one sample before a job
pays for it. Logic lives in `api/graders.py`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge.api import graders
from tuneforge.api.auth import OwnerDep
from tuneforge.api.protocol.graders import (
    RunGraderRequest,
    RunGraderResponse,
    ValidateGraderRequest,
    ValidateGraderResponse,
)

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", tags=["graders"])


@router.post("/validate", response_model=ValidateGraderResponse)
def validate_grader(body: ValidateGraderRequest, request: Request, owner: OwnerDep) -> ValidateGraderResponse:
    graders.check_grader(request, owner, body.grader)
    return ValidateGraderResponse(grader=body.grader.model_dump(mode="json", exclude_none=True))


@router.post("/run", response_model=RunGraderResponse)
async def run_grader(body: RunGraderRequest, request: Request, owner: OwnerDep) -> RunGraderResponse:
    graders.check_grader(request, owner, body.grader)
    return await graders.run_grader(request, body)
