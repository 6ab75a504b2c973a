"""The annotated video: the sampled frames with boxes, track ids and identities drawn, as a VP9 WebM."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2

from detectflow.detectors.base import Box, Detection
from detectflow.video.probe import read_frames, temp_video

__all__ = ["WEBM_FOURCC", "caption", "render_annotated_webm"]

#: FourCC of the annotated video: VP9, which the FFmpeg bundled with opencv-python-headless encodes
#: (its build has no H.264 encoder).
WEBM_FOURCC = "VP90"


def caption(det: dict[str, Any], names: Mapping[int, str] | None = None) -> str:
    """The tag drawn over a detection: ``#<track> <label>`` and its subject, if any.

    The subject is the one voted for the detection's track (``names``: track id -> subject name),
    else the face's own match when it is untracked.
    """
    track = det.get("track_id")
    parts = [f"#{track}"] if track is not None else []
    parts.append(det["label"])
    identity = det.get("identity") or {}
    if names and track in names:
        parts.append(str(names[track]))
    elif track is None and identity.get("decision") == "match" and identity.get("subject_name"):
        parts.append(str(identity["subject_name"]))
    return " ".join(parts)


def _drawable(det: dict[str, Any], names: Mapping[int, str] | None = None) -> Detection:
    b = det["box"]
    landmarks = tuple((p["x"], p["y"]) for p in det["landmarks"]) if det.get("landmarks") else None
    return Detection(caption(det, names), float(det["score"]), Box(b["x"], b["y"], b["width"], b["height"]), landmarks)


def render_annotated_webm(
    video: bytes, frames: Sequence[dict[str, Any]], fps: float, names: Mapping[int, str] | None = None
) -> bytes:
    """Draw each sampled frame's detections onto it and encode the frames as a WebM at ``fps``.

    Parameters
    ----------
    video
        The uploaded video.
    frames
        The job's frames (``{"index", "detections"}``), in order.
    fps
        Frame rate of the output (the job's sampling rate), frames/s.
    names
        The subject voted for each track (track id -> name), drawn beside the track id.

    Returns
    -------
    bytes
        The WebM file (VP9).
    """
    from detectflow.detectors.annotate import annotate

    by_index = {f["index"]: f["detections"] for f in frames}
    fd, name = tempfile.mkstemp(prefix="detectflow-annotated-", suffix=".webm")
    os.close(fd)
    out = Path(name)
    writer = None
    try:
        with temp_video(video) as path:
            for index, image in read_frames(path, by_index):
                if image is None:
                    continue
                if writer is None:
                    h, w = image.shape[:2]
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*WEBM_FOURCC), fps, (w, h))
                    if not writer.isOpened():  # pragma: no cover - the bundled FFmpeg has libvpx
                        raise RuntimeError("OpenCV cannot write VP9 WebM here")
                writer.write(annotate(image, [_drawable(d, names) for d in by_index[index]]))
        if writer is not None:
            writer.release()
            writer = None
        return out.read_bytes()
    finally:
        if writer is not None:
            writer.release()
        out.unlink(missing_ok=True)
