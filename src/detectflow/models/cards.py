"""Model cards: the JSON beside each ONNX file that says how to feed it and read its outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from detectflow.models.sources import sha256_file

__all__ = [
    "ModelCard",
    "ModelFile",
    "InputSpec",
    "Preprocessing",
    "SourceInfo",
    "Postprocessor",
    "card_path_for",
    "load_card",
    "write_card",
    "card_is_current",
]

#: ``embedding``: the output is the embedding itself (face embedders), nothing to decode.
Postprocessor = Literal["retinaface", "nanodet", "yolo", "embedding"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    """The network input: one image tensor."""

    name: str | None = None
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    #: Fixed (height, width), or None when the graph takes any size.
    size: tuple[int, int] | None = None
    color: Literal["BGR", "RGB"] = "BGR"


class Preprocessing(_Strict):
    """How a BGR uint8 image becomes the input tensor: resize, then ``(x - mean) / std`` per channel."""

    #: none: feed as is (only for graphs of any size); stretch: resize to ``size``;
    #: letterbox: keep aspect ratio and pad to ``size`` with ``pad_value``.
    resize: Literal["none", "stretch", "letterbox"] = "letterbox"
    #: For resize "none": shrink so the longest side is at most this many pixels (None: never).
    max_side: int | None = None
    #: Per-channel, in the order of ``InputSpec.color``, on 0..255 values.
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    pad_value: int = 114


class ModelFile(_Strict):
    """One ONNX file of a model, relative to the card's directory."""

    path: str
    #: Computed when the card is loaded if a hand-written card leaves it out.
    sha256: str | None = None
    precision: Literal["fp32", "fp16", "int8"] = "fp32"


class SourceInfo(_Strict):
    """Where the weights came from."""

    registry: str
    package: str
    version: str
    sha256: str
    member: str | None = None
    member_sha256: str | None = None


class ModelCard(_Strict):
    """Everything the runtime needs to know about a model besides its graph.

    A card written by hand for a user's model needs only ``name``, ``postprocessor`` and, for
    a fixed-size graph, ``input.size``; ``files`` defaults to the ONNX file beside it.
    """

    name: str
    version: str = "0"
    task: Literal["face", "object", "embed"] | None = None
    licence: str = "unknown"
    source: SourceInfo | None = None
    input: InputSpec = Field(default_factory=InputSpec)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    postprocessor: Postprocessor
    #: Extra keyword arguments of the postprocessor (strides, variances, cell offset ...).
    postprocessor_options: dict[str, Any] = Field(default_factory=dict)
    #: Class names by class index; empty means "class_<i>" (or COCO for an 80-class YOLO).
    labels: list[str] = Field(default_factory=list)
    #: "cpu" (fp32) is required; "gpu" (usually fp16) is picked when CUDA is available; "cpu_int8"
    #: (static int8) is picked on CPU when ``cpu_precision`` says so.
    files: dict[Literal["cpu", "gpu", "cpu_int8"], ModelFile] = Field(default_factory=dict)
    #: What CPU workers load by default: ``int8`` only when the build's accuracy report against fp32 passed.
    cpu_precision: Literal["fp32", "int8"] = "fp32"
    #: Figures measured at build time (parity, fp16 drift), recorded for the tests and docs.
    verification: dict[str, Any] = Field(default_factory=dict)
    build: dict[str, Any] = Field(default_factory=dict)


def card_path_for(onnx_path: Path) -> Path | None:
    """The card of a user ONNX file: ``model.json`` or ``model.onnx.json`` beside it, if either exists."""
    for candidate in (onnx_path.with_suffix(".json"), onnx_path.with_name(onnx_path.name + ".json")):
        if candidate.is_file():
            return candidate
    return None


def load_card(path: Path) -> ModelCard:
    """Read and validate a model card.

    Raises
    ------
    pydantic.ValidationError
        When the JSON does not describe a valid card.
    """
    return ModelCard.model_validate(json.loads(Path(path).read_text()))


def write_card(card: ModelCard, path: Path) -> None:
    """Write ``card`` as indented JSON (atomically: a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card.model_dump(mode="json", exclude_none=False), indent=2) + "\n")
    tmp.replace(path)


def card_is_current(card_path: Path, required: tuple[str, ...] = ("cpu",)) -> bool:
    """Whether the card exists, lists the ``required`` files, and every file it lists is on disk with its sha256."""
    if not card_path.is_file():
        return False
    try:
        card = load_card(card_path)
    except (ValueError, OSError):
        return False
    if not set(required) <= set(card.files):
        return False
    for f in card.files.values():
        p = card_path.parent / f.path
        if not p.is_file() or f.sha256 is None or sha256_file(p) != f.sha256:
            return False
    return True
