"""Options of the kinds that take some (recognition): validated by the API, stored with the job, read by the worker."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectflow.jobs.results import Box

__all__ = ["Thresholds", "EnrolOptions", "RecognizeOptions", "VerifyOptions", "MatchOptions", "MAX_TOP_K", "options_for"]

#: Most candidates a recognized face lists.
MAX_TOP_K = 20


class Thresholds(BaseModel):
    """Distances (Euclidean, between embeddings): <= ``match`` is the subject, <= ``uncertain`` maybe, above unknown."""

    model_config = ConfigDict(extra="forbid")

    match: float = Field(0.5, gt=0, le=2, description="At or under: `match`.")
    uncertain: float = Field(0.6, gt=0, le=2, description="At or under (and above `match`): `uncertain`.")

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.uncertain < self.match:
            raise ValueError("thresholds.uncertain must be >= thresholds.match")
        return self


class EnrolOptions(BaseModel):
    """An enrolment: which subject, and which face when an image has several."""

    model_config = ConfigDict(extra="forbid")

    gallery_id: str
    subject_id: str
    face_index: int | None = Field(None, ge=0, description="Enrol this face (0: best score) of an image with several.")
    box: Box | None = Field(None, description="Enrol the face whose box overlaps this one most.")


class RecognizeOptions(BaseModel):
    """A 1:N search."""

    model_config = ConfigDict(extra="forbid")

    gallery_id: str
    top_k: int = Field(3, ge=1, le=MAX_TOP_K)
    thresholds: Thresholds | None = Field(None, description="Overrides the gallery's thresholds for this job.")


class VerifyOptions(BaseModel):
    """A 1:1 comparison: two images, or one image and a gallery's subject."""

    model_config = ConfigDict(extra="forbid")

    gallery_id: str | None = None
    subject_id: str | None = None
    thresholds: Thresholds | None = None

    @model_validator(mode="after")
    def _subject_needs_gallery(self) -> VerifyOptions:
        if (self.gallery_id is None) != (self.subject_id is None):
            raise ValueError("gallery and subject go together")
        return self


class MatchOptions(BaseModel):
    """A batch match too large to answer synchronously: its embeddings are the job's input (float32 rows)."""

    model_config = ConfigDict(extra="forbid")

    gallery_id: str
    dimension: int = Field(ge=1, le=4096, description="Floats per embedding (the input's row length).")
    top_k: int = Field(3, ge=1, le=MAX_TOP_K)
    thresholds: Thresholds | None = Field(None, description="Overrides the gallery's thresholds for this job.")


def options_for(
    task: str,
    *,
    gallery_id: str | None = None,
    subject_id: str | None = None,
    top_k: int | None = None,
    match: float | None = None,
    uncertain: float | None = None,
    has_reference: bool = False,
) -> BaseModel | None:
    """The options of a ``POST /v1/jobs`` submission of ``task`` from its form fields (None: the kind takes none).

    Raises
    ------
    ValueError
        With a message for the client: a field the task does not take, or one it needs and lacks.
    """
    thresholds = None
    if match is not None or uncertain is not None:
        m = match if match is not None else min(0.5, uncertain or 0.5)
        thresholds = Thresholds(match=m, uncertain=uncertain if uncertain is not None else max(0.6, m))
    if task == "recognize":
        if gallery_id is None:
            raise ValueError("task recognize needs a gallery")
        if subject_id is not None or has_reference:
            raise ValueError("task recognize takes no subject and no reference image")
        return RecognizeOptions(gallery_id=gallery_id, top_k=top_k or 3, thresholds=thresholds)
    if task == "verify":
        if top_k is not None:
            raise ValueError("task verify takes no top_k")
        if has_reference == (subject_id is not None):
            raise ValueError("task verify needs a reference image, or a gallery and a subject (not both)")
        return VerifyOptions(gallery_id=gallery_id, subject_id=subject_id, thresholds=thresholds)
    if task == "enrol":
        raise ValueError("enrol faces with POST /v1/galleries/{gallery}/subjects/{subject}/faces")
    if task == "match":
        raise ValueError("match embeddings with POST /v1/galleries/{gallery}/match")
    if any(v is not None for v in (gallery_id, subject_id, top_k, match, uncertain)) or has_reference:
        raise ValueError(f"task {task} takes no gallery, subject, top_k, thresholds or reference image")
    return None
