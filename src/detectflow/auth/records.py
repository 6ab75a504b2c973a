"""The API key model family (create -> stored record -> public view -> created, shown once) and the principal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator

from detectflow.jobs.records import utcnow

__all__ = ["Scope", "ApiKeyBase", "ApiKeyCreate", "ApiKeyRecord", "ApiKeyPublic", "ApiKeyCreated", "ApiKeyList",
           "Principal", "TENANT_PATTERN"]  # fmt: skip

#: Tenant names: short, URL- and key-safe.
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class Scope(StrEnum):
    """What a key may do; ``admin`` may do everything, keys included."""

    jobs_write = "jobs:write"
    jobs_read = "jobs:read"
    galleries_write = "galleries:write"
    galleries_read = "galleries:read"
    admin = "admin"


class ApiKeyBase(BaseModel):
    """What a key's owner chooses."""

    tenant: str = Field(pattern=TENANT_PATTERN, examples=["acme"], description="Whose jobs the key sees and makes.")
    name: str = Field(min_length=1, max_length=100, examples=["acme-uploader"])
    scopes: list[Scope] = Field(min_length=1, examples=[["jobs:write", "jobs:read"]])
    rate_limit_per_second: float | None = Field(
        None, gt=0, le=100_000, description="Submissions per second (token bucket refill); null: the server's default."
    )
    burst: int | None = Field(None, ge=1, le=1_000_000, description="Bucket size; null: the server's default.")
    max_queued_jobs: int | None = Field(
        None, ge=1, le=10_000_000, description="Unfinished jobs the tenant may have; null: the server's default."
    )


class ApiKeyCreate(ApiKeyBase):
    """``POST /v1/keys``."""

    @field_validator("rate_limit_per_second", "burst", "max_queued_jobs", mode="before")
    @classmethod
    def _numbers_only(cls, value: object) -> object:
        # the document declares numbers: "1" and true are refused, not coerced (stored records are
        # read back from strings, so the strictness is the request's, not ApiKeyBase's)
        if isinstance(value, str | bool):
            raise ValueError("a JSON number, not a string or a boolean")
        return value


class ApiKeyPublic(ApiKeyBase):
    """A key as listed: never the key itself."""

    id: str = Field(examples=["3b9f0c1d2e4a5b6c7d8e"])
    created_at: datetime
    last_used_at: datetime | None = Field(None, description="Updated at most once a minute.")


class ApiKeyRecord(ApiKeyPublic):
    """A key as stored: its SHA-256, never the key."""

    digest: str

    def public(self) -> ApiKeyPublic:
        return ApiKeyPublic.model_validate(self.model_dump(exclude={"digest"}))

    def principal(self) -> Principal:
        return Principal(self.id, self.tenant, frozenset(self.scopes), self.max_queued_jobs)


class ApiKeyCreated(ApiKeyPublic):
    """The answer to ``POST /v1/keys``: the only time the key is shown."""

    key: str = Field(description="Send as `Authorization: Bearer <key>`. Shown once: store it now.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyPublic]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for."""

    key_id: str
    tenant: str
    scopes: frozenset[Scope]
    max_queued_jobs: int | None = None

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.admin in self.scopes


def new_record(create: ApiKeyCreate, key_id: str, digest: str) -> ApiKeyRecord:
    """The stored record of a new key."""
    return ApiKeyRecord(**create.model_dump(), id=key_id, digest=digest, created_at=utcnow())
