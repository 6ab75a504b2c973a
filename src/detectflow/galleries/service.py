"""GalleryService: galleries, subjects, faces, export/import and batch match as the API sees them (HTTP-free)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from anyio import to_thread
from pydantic import ValidationError

from detectflow.config import Settings
from detectflow.galleries.cache import GalleryCache
from detectflow.galleries.match import match_embeddings
from detectflow.galleries.records import (  # the match models live there: the client imports them without numpy
    Face,
    Gallery,
    GalleryCreate,
    GalleryExport,
    GalleryUpdate,
    MatchAnswer,
    MatchRequest,
    MatchResponse,
    Subject,
    SubjectCreate,
)
from detectflow.galleries.store import GalleryStore
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.options import MatchOptions

__all__ = ["GalleryService", "MatchRequest", "MatchResponse", "MatchAnswer"]


def _gallery_missing(gallery_id: str) -> DetectflowError:
    return DetectflowError(ErrorCode.gallery_not_found, f"No gallery {gallery_id}.")


class GalleryService:
    """Every call is one tenant's; another tenant's gallery is ``gallery_not_found``, as an unknown one."""

    def __init__(self, store: GalleryStore, cache: GalleryCache, settings: Settings) -> None:
        self.store = store
        self.cache = cache
        self.settings = settings

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await to_thread.run_sync(fn, *args)  # the store's client is synchronous

    # --- galleries --------------------------------------------------------------------
    async def create(self, tenant: str, spec: GalleryCreate) -> Gallery:
        return await self._run(self.store.create_gallery, tenant, spec, self._model_name())

    def _model_name(self) -> str:
        return self.settings.embed_model

    async def list(self, tenant: str) -> list[Gallery]:
        return await self._run(self.store.list_galleries, tenant)

    async def get(self, tenant: str, gallery_id: str) -> Gallery:
        gallery = await self._run(self.store.get_gallery, tenant, gallery_id)
        if gallery is None:
            raise _gallery_missing(gallery_id)
        return gallery

    async def update(self, tenant: str, gallery_id: str, update: GalleryUpdate) -> Gallery:
        """Change a gallery's name, thresholds (merged) or metadata; its version is bumped.

        Raises
        ------
        DetectflowError
            ``gallery_not_found``; ``validation_error`` when the merged thresholds have ``uncertain < match``.
        """
        try:
            gallery = await self._run(self.store.update_gallery, tenant, gallery_id, update)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise DetectflowError(
                ErrorCode.validation_error, error["msg"].removeprefix("Value error, "), {"field": "thresholds"}
            ) from None
        if gallery is None:
            raise _gallery_missing(gallery_id)
        return gallery

    async def delete(self, tenant: str, gallery_id: str) -> None:
        if not await self._run(self.store.delete_gallery, tenant, gallery_id):
            raise _gallery_missing(gallery_id)

    # --- subjects ---------------------------------------------------------------------
    async def create_subject(self, tenant: str, gallery_id: str, spec: SubjectCreate) -> Subject:
        subject = await self._run(self.store.create_subject, tenant, gallery_id, spec)
        if subject is None:
            raise _gallery_missing(gallery_id)
        return subject

    async def list_subjects(self, tenant: str, gallery_id: str) -> list[Subject]:
        await self.get(tenant, gallery_id)
        return await self._run(self.store.list_subjects, tenant, gallery_id)

    async def get_subject(self, tenant: str, gallery_id: str, subject_id: str) -> Subject:
        await self.get(tenant, gallery_id)
        subject = await self._run(self.store.get_subject, tenant, gallery_id, subject_id)
        if subject is None:
            raise DetectflowError(ErrorCode.subject_not_found, f"No subject {subject_id} in gallery {gallery_id}.")
        return subject

    async def delete_subject(self, tenant: str, gallery_id: str, subject_id: str) -> None:
        await self.get(tenant, gallery_id)
        if not await self._run(self.store.delete_subject, tenant, gallery_id, subject_id):
            raise DetectflowError(ErrorCode.subject_not_found, f"No subject {subject_id} in gallery {gallery_id}.")

    # --- faces ------------------------------------------------------------------------
    async def list_faces(self, tenant: str, gallery_id: str, subject_id: str) -> list[Face]:
        await self.get_subject(tenant, gallery_id, subject_id)
        return await self._run(self.store.list_faces, tenant, gallery_id, subject_id)

    async def delete_face(self, tenant: str, gallery_id: str, subject_id: str, face_id: str) -> None:
        await self.get_subject(tenant, gallery_id, subject_id)
        if not await self._run(self.store.delete_face, tenant, gallery_id, subject_id, face_id):
            raise DetectflowError(ErrorCode.face_not_found, f"No face {face_id} of subject {subject_id}.")

    # --- export, import, match --------------------------------------------------------
    async def export(self, tenant: str, gallery_id: str) -> GalleryExport:
        data = await self._run(self.store.export, tenant, gallery_id)
        if data is None:
            raise _gallery_missing(gallery_id)
        return data

    async def import_(self, tenant: str, data: GalleryExport) -> Gallery:
        for s in data.subjects:
            for f in s.faces:
                if len(f.embedding) != data.dimension:
                    raise DetectflowError(
                        ErrorCode.embedding_dimension_mismatch,
                        f"Face {f.id} has {len(f.embedding)} floats; the export declares dimension {data.dimension}.",
                        {"face_id": f.id, "dimension": data.dimension},
                    )
        return await self._run(self.store.import_gallery, tenant, data)

    def synchronous(self, request: MatchRequest) -> bool:
        """Whether a batch is answered at once (up to ``recognition_max_match_batch``) rather than as a job."""
        return len(request.embeddings) <= self.settings.recognition_max_match_batch

    async def match(self, tenant: str, gallery_id: str, request: MatchRequest) -> MatchResponse:
        """Exact (or, for a large gallery, approximate) 1:N search of up to ``recognition_max_match_batch``."""
        _check_batch_size(request, self.settings.recognition_max_match_batch, "request")
        gallery = await self.get(tenant, gallery_id)
        matrix = await self._run(self.cache.get, tenant, gallery_id)
        if matrix is None:
            raise _gallery_missing(gallery_id)
        _check_dimension(request, matrix.dimension or len(request.embeddings[0]))
        thresholds = request.thresholds or gallery.thresholds
        queries = np.asarray(request.embeddings, np.float32)
        found = await self._run(match_embeddings, matrix, queries, thresholds, request.top_k)
        return MatchResponse(
            gallery_id=gallery_id,
            gallery_version=matrix.version,
            thresholds=thresholds,
            results=[MatchAnswer(match=m, candidates=c) for m, c in found],
        )

    async def match_job_input(self, tenant: str, gallery_id: str, request: MatchRequest) -> tuple[bytes, MatchOptions]:
        """The input (float32 rows) and options of a ``match`` job for a batch above the synchronous limit.

        Raises
        ------
        DetectflowError
            ``match_batch_too_large`` above ``recognition_max_match_job``, ``gallery_not_found``,
            ``embedding_dimension_mismatch``.
        """
        _check_batch_size(request, self.settings.recognition_max_match_job, "job")
        await self.get(tenant, gallery_id)
        dimension = await self._run(self.store.dimension, tenant, gallery_id)
        dimension = dimension or len(request.embeddings[0])
        _check_dimension(request, dimension)
        data = np.asarray(request.embeddings, "<f4").tobytes()
        return data, MatchOptions(
            gallery_id=gallery_id, dimension=dimension, top_k=request.top_k, thresholds=request.thresholds
        )


def _check_dimension(request: MatchRequest, dimension: int) -> None:
    wrong = next((i for i, e in enumerate(request.embeddings) if len(e) != dimension), None)
    if wrong is not None:
        raise DetectflowError(
            ErrorCode.embedding_dimension_mismatch,
            f"Embedding {wrong} has {len(request.embeddings[wrong])} floats; this gallery's have {dimension}.",
            {"index": wrong, "dimension": dimension},
        )


def _check_batch_size(request: MatchRequest, limit: int, where: str) -> None:
    """``match_batch_too_large`` when the batch has more than ``limit`` embeddings (``where``: request or job)."""
    if len(request.embeddings) > limit:
        raise DetectflowError(
            ErrorCode.match_batch_too_large,
            f"{len(request.embeddings)} embeddings: at most {limit} are matched in one {where}; split the batch.",
            {"embeddings": len(request.embeddings), "max_embeddings": limit},
        )
