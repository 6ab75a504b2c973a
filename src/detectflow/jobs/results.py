"""Typed job results, one model per kind of result (what a worker stores and a client reads)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Box", "Point", "Detection", "ImageSize", "ModelRef", "DetectionTimings", "DetectionResult"]


def _is_none(value: object) -> bool:
    return value is None


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Box(_Result):
    """An axis-aligned box in pixels of the uploaded image (top-left corner, size)."""

    x: float
    y: float
    width: float
    height: float


class Point(_Result):
    """A point in pixels of the uploaded image."""

    x: float
    y: float


class Detection(_Result):
    """One detected thing; faces carry five landmarks (eyes, nose tip, mouth corners)."""

    label: str = Field(examples=["face"])
    score: float = Field(ge=0, le=1, examples=[0.9993])
    box: Box
    landmarks: list[Point] | None = Field(
        None, exclude_if=_is_none, description="Faces only: five landmarks; absent for objects."
    )


class ImageSize(_Result):
    """Pixel size of the decoded image."""

    width: int = Field(ge=1)
    height: int = Field(ge=1)


class ModelRef(_Result):
    """The model that produced a result."""

    name: str = Field(examples=["retinaface-mnet025"])
    version: str = Field(examples=["0.1.0"])
    sha256: str = Field(description="sha256 of the ONNX file that ran.")
    provider: str = Field(examples=["CPUExecutionProvider"], description="onnxruntime execution provider in use.")
    precision: str | None = Field(
        None, exclude_if=_is_none, examples=["fp32"], description="Numeric precision of the file that ran."
    )


class DetectionTimings(_Result):
    """Where a job's time went, in milliseconds."""

    queued: float = Field(description="From submission to the worker starting it.")
    inference: float = Field(description="Running the model (pre- and postprocessing included).")
    total: float = Field(description="From submission to the result.")


class DetectionResult(_Result):
    """The result of a detection job (`face`, `object`): what was found in the image, best score first."""

    image: ImageSize
    detections: list[Detection]
    model: ModelRef
    timings_ms: DetectionTimings
