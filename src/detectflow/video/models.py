"""The typed parts of a video job: its options, its progress, its result and its per-frame detections."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectflow.jobs.results import Detection, ModelRef
from detectflow.video.plan import DEFAULT_SAMPLE_FPS

__all__ = [
    "VideoOptions",
    "VideoProgress",
    "VideoInfoOut",
    "TrackIdentity",
    "Track",
    "LabelSummary",
    "VideoTimings",
    "VideoResult",
    "VideoDetection",
    "VideoFrame",
    "FramePage",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _is_none(value: object) -> bool:
    return value is None


class VideoOptions(_Model):
    """Options of a video job (the form fields of ``POST /v1/jobs``)."""

    sample_fps: float = Field(DEFAULT_SAMPLE_FPS, gt=0, description="Frames per second of video to run the model on.")
    max_frames: int | None = Field(None, ge=1, description="At most this many sampled frames (the first ones).")
    start_ms: int = Field(0, ge=0, description="Start of the window to sample, ms.")
    end_ms: int | None = Field(None, ge=1, description="End of the window to sample (exclusive), ms; unset: the end.")
    track: bool = Field(True, description="Follow detections across frames as tracks.")

    @model_validator(mode="after")
    def _window(self) -> VideoOptions:
        if self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ValueError("end_ms must be after start_ms")
        return self


class VideoProgress(_Model):
    """How far a running video job has got."""

    frames_done: int
    frames_total: int
    segments_done: int
    segments_total: int
    eta_seconds: float | None = Field(None, description="Estimated seconds left, from the pace so far.")


class VideoInfoOut(_Model):
    """The video as decoded."""

    duration_ms: float
    fps: float
    width: int
    height: int
    frames_sampled: int = Field(description="Frames the model ran on.")


class TrackIdentity(_Model):
    """The gallery subject voted over a track's faces (recognition jobs): the rule of ``vote_identity``."""

    subject_id: str | None = Field(description="The subject named by most of the track's matched faces; null: unknown.")
    subject_name: str | None
    decision: Literal["match", "uncertain", "unknown"] = Field(
        description="`match`: the subject holds at least half the recognised faces; `uncertain`: it leads with "
        "fewer; `unknown`: no face matched."
    )
    votes: int = Field(description="Faces of the track whose own decision named `subject_id`.")
    faces: int = Field(description="Faces of the track recognition ran on.")
    distance: float | None = Field(description="Mean embedding distance of the votes for `subject_id`.")


class Track(_Model):
    """One object followed through the video."""

    track_id: int
    label: str
    first_ms: float
    last_ms: float
    frames: int = Field(description="Sampled frames the track was detected in.")
    best_frame_ms: float = Field(description="Timestamp of its highest-scoring detection.")
    best_score: float
    identity: TrackIdentity | None = None
    embedding: list[float] | None = Field(
        None, exclude_if=_is_none,
        description="embed jobs: the embedding of the track's best face (its highest detector score).",
    )


class LabelSummary(_Model):
    """What was found of one label."""

    tracks: int
    detections: int
    frames: int = Field(description="Sampled frames with at least one detection of the label.")
    max_score: float


class VideoTimings(_Model):
    """Where a video job's time went, in milliseconds."""

    queued: float = Field(description="From submission to a worker starting it.")
    inference: float = Field(description="Running the model, summed over every frame and segment.")
    decode: float = Field(description="Decoding the sampled frames, summed over segments.")
    total: float = Field(description="From submission to the merged result.")


class VideoResult(_Model):
    """The result of a video job: the video, its tracks and a per-label summary (frames: ``/frames``)."""

    video: VideoInfoOut
    tracks: list[Track]
    labels: dict[str, LabelSummary]
    segments: int = Field(description="Segments the video was split into (queue messages).")
    model: ModelRef
    embedding_model: ModelRef | None = Field(None, exclude_if=_is_none, description="recognize, embed: the embedder.")
    gallery_id: str | None = Field(None, exclude_if=_is_none, description="recognize: the gallery searched.")
    gallery_version: int | None = Field(
        None, exclude_if=_is_none, description="recognize: the newest gallery version a segment searched."
    )
    thresholds: dict[str, float] | None = Field(
        None, exclude_if=_is_none, description="recognize: the distances applied (`match`, `uncertain`)."
    )
    timings_ms: VideoTimings


class VideoDetection(Detection):
    """A detection in one frame of a video, with its track."""

    track_id: int | None = Field(None, exclude_if=_is_none)
    identity: dict | None = Field(
        None, exclude_if=_is_none,
        description="recognize: this face against the gallery (`subject_id`, `subject_name`, `decision`, `distance`).",
    )
    embedding: list[float] | None = Field(None, exclude_if=_is_none, description="embed: this face's embedding.")


class VideoFrame(_Model):
    """The detections of one sampled frame."""

    index: int = Field(description="Frame number in the stream, from 0.")
    timestamp_ms: float
    detections: list[VideoDetection]


class FramePage(_Model):
    """One page of a video job's sampled frames, in order."""

    items: list[VideoFrame]
    offset: int
    total: int = Field(description="Sampled frames of the job.")
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page.")
