"""Recognition jobs (embed, enrol, recognize, verify, match): detect faces, embed them as one batch, match or store them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from detectflow.detectors.base import Detection
from detectflow.galleries.enrol import pick_face
from detectflow.galleries.match import decide, match_embeddings
from detectflow.galleries.records import Face
from detectflow.galleries.store import new_id
from detectflow.jobs.bundle import unpack_images
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.images import decode_image
from detectflow.jobs.options import EnrolOptions, MatchOptions, RecognizeOptions, Thresholds, VerifyOptions
from detectflow.jobs.records import utcnow
from detectflow.jobs.results import Box, DetectionTimings, ImageSize, ModelRef, Point
from detectflow.jobs.results_recognition import (
    EmbeddedFace,
    EmbedResult,
    EnrolImage,
    EnrolResult,
    FaceQuality,
    MatchAnswer,
    MatchResult,
    RecognizedFace,
    RecognizeResult,
    VerifyFace,
    VerifyResult,
)
from detectflow.worker.tasks.base import Outcome

if TYPE_CHECKING:
    from detectflow.jobs.records import JobRecord
    from detectflow.worker.context import WorkerContext

__all__ = [
    "run_embed", "run_enrol", "run_recognize", "run_verify", "run_match", "face_fields", "gallery_matrix",
    "thresholds_of",
]  # fmt: skip


def face_fields(d: Detection) -> dict:
    """Box, landmarks and quality of a detected face, as result fields."""
    return {
        "box": Box(x=d.box.x, y=d.box.y, width=d.box.width, height=d.box.height),
        "landmarks": [Point(x=x, y=y) for x, y in d.landmarks or ()],
        "quality": FaceQuality(score=round(float(d.score), 6), size=round(float(min(d.box.width, d.box.height)), 2)),
    }


def _timings(job: JobRecord, inference_s: float) -> DetectionTimings:
    now = utcnow()
    started = job.started_at or now
    return DetectionTimings(
        queued=round((started - job.created_at).total_seconds() * 1000, 3),
        inference=round(inference_s * 1000, 3),
        total=round((now - job.created_at).total_seconds() * 1000, 3),
    )


def _faces_and_embeddings(ctx: WorkerContext, image: np.ndarray) -> tuple[list[Detection], np.ndarray]:
    """Every face of ``image`` and their embeddings, all faces through the embedder as one batch."""
    faces = [f for f in ctx.require_detector().detect(image) if f.landmarks is not None]
    return faces, ctx.require_embedder().embed_faces(image, faces)


def _models(ctx: WorkerContext) -> tuple[ModelRef, ModelRef]:
    return ModelRef(**ctx.require_detector().info.to_dict()), ModelRef(**ctx.require_embedder().info.to_dict())


def gallery_matrix(ctx: WorkerContext, tenant: str, gallery_id: str):
    """The gallery's embedding matrix (cached by version); ``gallery_not_found`` once it is gone."""
    matrix = ctx.galleries.get(tenant, gallery_id)
    if matrix is None:
        raise DetectflowError(ErrorCode.gallery_not_found, f"No gallery {gallery_id}.")
    return matrix


def thresholds_of(ctx: WorkerContext, tenant: str, gallery_id: str | None, override: Thresholds | None) -> Thresholds:
    """The job's thresholds: its own override, else its gallery's, else the settings' defaults."""
    if override is not None:
        return override
    if gallery_id is not None:
        gallery = ctx.galleries.store.get_gallery(tenant, gallery_id)
        if gallery is not None:
            return gallery.thresholds
    s = ctx.settings
    return Thresholds(match=s.recognition_match_distance, uncertain=s.recognition_uncertain_distance)


def run_embed(ctx: WorkerContext, job: JobRecord, data: bytes) -> Outcome:
    """Every face of one image with its box, landmarks, quality and embedding."""
    image = decode_image(data, ctx.settings.api_max_image_pixels)
    t0 = time.perf_counter()
    faces, embeddings = _faces_and_embeddings(ctx, image)
    inference_s = time.perf_counter() - t0
    model, embedding_model = _models(ctx)
    result = EmbedResult(
        image=ImageSize(width=int(image.shape[1]), height=int(image.shape[0])),
        faces=[
            EmbeddedFace(**face_fields(f), embedding=[round(float(x), 7) for x in e])
            for f, e in zip(faces, embeddings, strict=True)
        ],
        model=model,
        embedding_model=embedding_model,
        timings_ms=_timings(job, inference_s),
    )
    return Outcome(result, inference_s, f"{len(faces)} faces embedded")


def run_recognize(ctx: WorkerContext, job: JobRecord, data: bytes) -> Outcome:
    """Every face of one image matched 1:N against a gallery: a decision and the top-k subjects each."""
    options = RecognizeOptions.model_validate(job.options or {})
    matrix = gallery_matrix(ctx, job.tenant, options.gallery_id)
    thresholds = thresholds_of(ctx, job.tenant, options.gallery_id, options.thresholds)
    image = decode_image(data, ctx.settings.api_max_image_pixels)
    t0 = time.perf_counter()
    faces, embeddings = _faces_and_embeddings(ctx, image)
    matches = match_embeddings(matrix, embeddings, thresholds, options.top_k) if faces else []
    inference_s = time.perf_counter() - t0
    model, embedding_model = _models(ctx)
    result = RecognizeResult(
        image=ImageSize(width=int(image.shape[1]), height=int(image.shape[0])),
        gallery_id=options.gallery_id,
        gallery_version=matrix.version,
        thresholds=thresholds.model_dump(),
        faces=[
            RecognizedFace(**face_fields(f), match=m, candidates=c)
            for f, (m, c) in zip(faces, matches, strict=True)
        ],
        model=model,
        embedding_model=embedding_model,
        timings_ms=_timings(job, inference_s),
    )
    known = sum(m.decision == "match" for m, _ in matches)
    return Outcome(result, inference_s, f"{len(faces)} faces, {known} matched")


def run_enrol(ctx: WorkerContext, job: JobRecord, data: bytes) -> Outcome:
    """One face of each image enrolled into a subject; each image reports what happened to it."""
    options = EnrolOptions.model_validate(job.options or {})
    store = ctx.galleries.store
    if store.get_subject(job.tenant, options.gallery_id, options.subject_id) is None:
        raise DetectflowError(
            ErrorCode.subject_not_found, f"No subject {options.subject_id} in gallery {options.gallery_id}."
        )
    reports: list[EnrolImage] = []
    new: list[tuple[Face, np.ndarray]] = []
    inference_s = 0.0
    for index, blob in enumerate(unpack_images(data)):
        try:
            image = decode_image(blob, ctx.settings.api_max_image_pixels)
        except DetectflowError as exc:
            reports.append(EnrolImage(index=index, status="invalid_image", message=exc.message))
            continue
        t0 = time.perf_counter()
        faces = [f for f in ctx.require_detector().detect(image) if f.landmarks is not None]
        picked, status, message = pick_face(faces, options.face_index, options.box)
        if picked is None:
            inference_s += time.perf_counter() - t0
            reports.append(EnrolImage(index=index, status=status, message=message, faces_found=len(faces)))
            continue
        (embedding,) = ctx.require_embedder().embed_faces(image, [faces[picked]])
        inference_s += time.perf_counter() - t0
        fields = face_fields(faces[picked])
        face = Face(
            id=new_id(), subject_id=options.subject_id, box=fields["box"], quality=fields["quality"],
            source=f"job:{job.id}/image:{index}",
        )  # fmt: skip
        new.append((face, embedding))
        reports.append(
            EnrolImage(
                index=index, status="enrolled", faces_found=len(faces), face_id=face.id,
                box=fields["box"], quality=fields["quality"],
            )  # fmt: skip
        )
    version = store.version(job.tenant, options.gallery_id) or 0
    if new:
        stored = store.add_faces(job.tenant, options.gallery_id, options.subject_id, new)
        if stored is None:
            raise DetectflowError(ErrorCode.subject_not_found, "The subject or its gallery was deleted meanwhile.")
        version = stored
    result = EnrolResult(
        gallery_id=options.gallery_id,
        subject_id=options.subject_id,
        enrolled=len(new),
        images=reports,
        gallery_version=version,
        embedding_model=ModelRef(**ctx.require_embedder().info.to_dict()),
        timings_ms=_timings(job, inference_s),
    )
    return Outcome(result, inference_s, f"{len(new)} of {len(reports)} images enrolled")


def _one_face(ctx: WorkerContext, blob: bytes, source: str) -> tuple[VerifyFace, np.ndarray]:
    image = decode_image(blob, ctx.settings.api_max_image_pixels)
    faces, embeddings = _faces_and_embeddings(ctx, image)
    if not faces:
        raise DetectflowError(ErrorCode.no_face, f"No face was found in {source}.", {"source": source})
    fields = face_fields(faces[0])  # the best-scored face
    return VerifyFace(source=source, box=fields["box"], quality=fields["quality"]), embeddings[0]


def run_verify(ctx: WorkerContext, job: JobRecord, data: bytes) -> Outcome:
    """1:1: the best face of two images, or of one image against a subject's nearest enrolled face."""
    options = VerifyOptions.model_validate(job.options or {})
    images = unpack_images(data)
    thresholds = thresholds_of(ctx, job.tenant, options.gallery_id, options.thresholds)
    t0 = time.perf_counter()
    first, a = _one_face(ctx, images[0], "image:0")
    if options.subject_id is not None and options.gallery_id is not None:
        matrix = gallery_matrix(ctx, job.tenant, options.gallery_id)
        if options.subject_id not in matrix.subject_ids:
            raise DetectflowError(
                ErrorCode.subject_not_found, f"Subject {options.subject_id} has no enrolled face in this gallery."
            )
        j = matrix.subject_ids.index(options.subject_id)
        rows = matrix.vectors[matrix.face_subject == j]
        distance = float(np.sqrt(((rows - a) ** 2).sum(1)).min())
        second = VerifyFace(source=f"subject:{options.subject_id}")
    else:
        if len(images) < 2:
            raise DetectflowError(ErrorCode.validation_error, "verify needs two images, or an image and a subject.")
        second, b = _one_face(ctx, images[1], "image:1")
        distance = float(np.sqrt(((a - b) ** 2).sum()))
    inference_s = time.perf_counter() - t0
    decision = decide(distance, thresholds)
    result = VerifyResult(
        same=decision == "match",
        decision=decision,
        distance=round(distance, 6),
        thresholds=thresholds.model_dump(),
        faces=[first, second],
        embedding_model=ModelRef(**ctx.require_embedder().info.to_dict()),
        timings_ms=_timings(job, inference_s),
    )
    return Outcome(result, inference_s, f"distance {distance:.3f}: {decision}")


def run_match(ctx: WorkerContext, job: JobRecord, data: bytes) -> Outcome:
    """A batch of embeddings (the job's input: float32 rows) matched 1:N against a gallery, in order."""
    options = MatchOptions.model_validate(job.options or {})
    matrix = gallery_matrix(ctx, job.tenant, options.gallery_id)
    if matrix.size and matrix.dimension != options.dimension:  # faces of another model were enrolled meanwhile
        raise DetectflowError(
            ErrorCode.embedding_dimension_mismatch,
            f"The embeddings have {options.dimension} floats; this gallery's have {matrix.dimension}.",
            {"dimension": matrix.dimension},
        )
    thresholds = thresholds_of(ctx, job.tenant, options.gallery_id, options.thresholds)
    queries = np.frombuffer(data, "<f4").reshape(-1, options.dimension)
    t0 = time.perf_counter()
    found = match_embeddings(matrix, queries, thresholds, options.top_k)
    inference_s = time.perf_counter() - t0
    result = MatchResult(
        gallery_id=options.gallery_id,
        gallery_version=matrix.version,
        thresholds=thresholds.model_dump(),
        results=[MatchAnswer(match=m, candidates=c) for m, c in found],
        timings_ms=_timings(job, inference_s),
    )
    known = sum(m.decision == "match" for m, _ in found)
    return Outcome(result, inference_s, f"{len(found)} embeddings, {known} matched")
