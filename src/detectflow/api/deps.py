"""FastAPI dependencies: the settings and the job service, injected through Annotated aliases.

They are ``async def`` so FastAPI resolves them on the event loop, not in its thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from detectflow.config import Settings
from detectflow.jobs.service import JobService

__all__ = ["SettingsDep", "JobServiceDep", "get_job_service", "get_app_settings"]


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_job_service(request: Request) -> JobService:
    return request.app.state.jobs


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
JobServiceDep = Annotated[JobService, Depends(get_job_service)]
