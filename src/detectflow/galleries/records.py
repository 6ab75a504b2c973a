"""The gallery model family: galleries, subjects and faces (create -> stored -> public), and the export format."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from detectflow.jobs.options import MAX_TOP_K, Thresholds
from detectflow.jobs.records import utcnow
from detectflow.jobs.results import Box
from detectflow.jobs.results_recognition import FaceQuality, MatchAnswer

__all__ = [
    "GalleryCreate", "Gallery", "GalleryList", "SubjectCreate", "Subject", "SubjectList", "Face", "FaceList",
    "ExportedFace", "ExportedSubject", "GalleryExport", "EXPORT_FORMAT", "MatchRequest", "MatchAnswer", "MatchResponse",
    "GalleryUpdate", "ThresholdsUpdate",
]  # fmt: skip

#: The ``format`` of an export; an import refuses any other.
EXPORT_FORMAT = "detectflow.gallery/v1"

_Metadata = dict[str, Any]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GalleryCreate(_Model):
    """``POST /v1/galleries``."""

    name: str = Field(min_length=1, max_length=200, examples=["class-3b"])
    thresholds: Thresholds = Field(default_factory=Thresholds)
    metadata: _Metadata = Field(default_factory=dict)


class Gallery(GalleryCreate):
    """A gallery as stored and answered (``subjects``, ``faces`` and ``version`` are counted when read)."""

    id: str = Field(examples=["5e0c2b7f4a9d4c1e8f3a6b2d1c0e9f8a"])
    created_at: datetime = Field(default_factory=utcnow)
    embedding_model: str = Field("dlib-resnet-v1", description="The embedder whose embeddings it holds.")
    version: int = Field(0, description="Bumped by every change of its subjects or faces (workers' caches follow it).")
    subjects: int = 0
    faces: int = 0


class GalleryList(BaseModel):
    items: list[Gallery]


class SubjectCreate(_Model):
    """``POST /v1/galleries/{g}/subjects``."""

    name: str = Field(min_length=1, max_length=200, examples=["Barack Obama"])
    metadata: _Metadata = Field(default_factory=dict)


class Subject(SubjectCreate):
    """A person enrolled in a gallery."""

    id: str
    gallery_id: str
    created_at: datetime = Field(default_factory=utcnow)
    faces: int = 0


class SubjectList(BaseModel):
    items: list[Subject]


class Face(BaseModel):
    """One enrolled face (its embedding is in exports, not in listings)."""

    id: str
    subject_id: str
    created_at: datetime = Field(default_factory=utcnow)
    box: Box | None = None
    quality: FaceQuality | None = None
    source: str = Field("", description="Where it came from: `job:<id>/image:<n>` or `import`.")


class FaceList(BaseModel):
    items: list[Face]


class ExportedFace(_Model):
    id: str
    embedding: list[float] = Field(min_length=1, max_length=4096)
    created_at: datetime | None = None
    box: Box | None = None
    quality: FaceQuality | None = None
    source: str = ""


class ExportedSubject(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=200)
    metadata: _Metadata = Field(default_factory=dict)
    faces: list[ExportedFace] = Field(default_factory=list)


class GalleryExport(_Model):
    """A gallery's subjects and embeddings: ``GET /v1/galleries/{g}/export``, ``POST /v1/galleries/import``."""

    format: Literal["detectflow.gallery/v1"] = EXPORT_FORMAT
    name: str = Field(min_length=1, max_length=200)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    metadata: _Metadata = Field(default_factory=dict)
    embedding_model: str = "dlib-resnet-v1"
    dimension: int = Field(128, ge=1, le=4096)
    subjects: list[ExportedSubject] = Field(default_factory=list)


class ThresholdsUpdate(_Model):
    """Either distance or both; the other is kept. The merged pair must keep ``match <= uncertain``."""

    match: float | None = Field(None, gt=0, le=2)
    uncertain: float | None = Field(None, gt=0, le=2)


class GalleryUpdate(_Model):
    """``PATCH /v1/galleries/{g}``: the fields to change (absent ones are kept); bumps the gallery's version."""

    name: str | None = Field(None, min_length=1, max_length=200, examples=["class-3b"])
    thresholds: ThresholdsUpdate | None = Field(None, description="Merged into the current thresholds.")
    metadata: _Metadata | None = Field(None, description="Replaces the metadata.")


class MatchRequest(BaseModel):
    """``POST /v1/galleries/{g}/match``: embeddings (e.g. from ``embed`` jobs) to match 1:N, in order."""

    embeddings: list[list[float]] = Field(
        min_length=1,
        description="128 floats each. Up to 1,000 are answered at once; more (up to 10,000 by default) become a "
        "`match` job whose result holds the same `results`.",
    )
    top_k: int = Field(3, ge=1, le=MAX_TOP_K)
    thresholds: Thresholds | None = Field(None, description="Overrides the gallery's thresholds.")


class MatchResponse(BaseModel):
    gallery_id: str
    gallery_version: int
    thresholds: Thresholds
    results: list[MatchAnswer] = Field(description="One per embedding, in the request's order.")
