"""Typed results of the recognition kinds (embed, enrol, recognize, verify, match)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from detectflow.jobs.results import Box, DetectionTimings, ImageSize, ModelRef, Point, _is_none, _Result

__all__ = [
    "Decision", "FaceQuality", "EmbeddedFace", "EmbedResult", "Candidate", "Match", "RecognizedFace",
    "RecognizeResult", "EnrolImage", "EnrolResult", "VerifyFace", "VerifyResult", "MatchAnswer", "MatchResult",
]  # fmt: skip

#: What a distance means against a gallery's thresholds.
Decision = Literal["match", "uncertain", "unknown"]


class FaceQuality(_Result):
    """How trustworthy a face is: the detector's score and the face's size."""

    score: float = Field(ge=0, le=1, description="Face detector score.")
    size: float = Field(ge=0, description="The shorter side of the face box, in pixels.")


class _Face(_Result):
    box: Box
    landmarks: list[Point] = Field(description="Five landmarks: eyes, nose tip, mouth corners.")
    quality: FaceQuality


class EmbeddedFace(_Face):
    """One face and its embedding."""

    embedding: list[float] = Field(description="The face's embedding (128 floats for dlib-resnet-v1).")


class EmbedResult(_Result):
    """The result of an ``embed`` job: every face with its embedding, best score first."""

    image: ImageSize
    faces: list[EmbeddedFace]
    model: ModelRef = Field(description="The face detector.")
    embedding_model: ModelRef = Field(description="The embedder; embeddings of different models do not compare.")
    timings_ms: DetectionTimings


class Candidate(_Result):
    """A gallery subject near a face: its nearest enrolled face's distance."""

    subject_id: str
    subject_name: str
    distance: float = Field(ge=0, description="Euclidean distance between embeddings (0: identical).")


class Match(_Result):
    """The decision on a face: ``unknown`` never names a subject."""

    subject_id: str | None = None
    subject_name: str | None = None
    distance: float | None = Field(None, description="Distance to the nearest subject; null for an empty gallery.")
    decision: Decision


class RecognizedFace(_Face):
    """One face, its decision and the nearest subjects."""

    match: Match
    candidates: list[Candidate] = Field(description="The top-k nearest subjects, nearest first, whatever the decision.")


class RecognizeResult(_Result):
    """The result of a ``recognize`` job."""

    image: ImageSize
    gallery_id: str
    gallery_version: int
    thresholds: dict[str, float] = Field(description="The thresholds applied (`match`, `uncertain`).")
    faces: list[RecognizedFace]
    model: ModelRef
    embedding_model: ModelRef
    timings_ms: DetectionTimings


class EnrolImage(_Result):
    """What happened to one image of an enrolment, in upload order."""

    index: int = Field(ge=0, description="Position of the image in the request.")
    status: Literal["enrolled", "no_face", "several_faces", "face_not_found", "invalid_image"]
    message: str = ""
    faces_found: int = 0
    face_id: str | None = Field(None, exclude_if=_is_none)
    box: Box | None = Field(None, exclude_if=_is_none)
    quality: FaceQuality | None = Field(None, exclude_if=_is_none)


class EnrolResult(_Result):
    """The result of an ``enrol`` job."""

    gallery_id: str
    subject_id: str
    enrolled: int = Field(ge=0, description="Faces added.")
    images: list[EnrolImage]
    gallery_version: int
    embedding_model: ModelRef
    timings_ms: DetectionTimings


class VerifyFace(_Result):
    """A face compared by ``verify``."""

    source: str = Field(description="`image:0`, `image:1` or `subject:<id>`.")
    box: Box | None = Field(None, exclude_if=_is_none)
    quality: FaceQuality | None = Field(None, exclude_if=_is_none)


class VerifyResult(_Result):
    """The result of a ``verify`` job: the same person or not."""

    same: bool = Field(description="`distance <= thresholds.match`.")
    decision: Decision
    distance: float
    thresholds: dict[str, float]
    faces: list[VerifyFace]
    embedding_model: ModelRef
    timings_ms: DetectionTimings


class MatchAnswer(_Result):
    """One embedding of a batch match: its decision and its nearest subjects."""

    match: Match
    candidates: list[Candidate]


class MatchResult(_Result):
    """The result of a ``match`` job (a batch match above the synchronous limit): one answer per embedding, in order."""

    gallery_id: str
    gallery_version: int
    thresholds: dict[str, float] = Field(description="The thresholds applied (`match`, `uncertain`).")
    results: list[MatchAnswer] = Field(description="One per embedding, in the request's order.")
    timings_ms: DetectionTimings
