"""Which face of an image to enrol (pure): the only one, the one asked for by index, or the one under a box."""

from __future__ import annotations

from collections.abc import Sequence

from detectflow.detectors.base import Detection
from detectflow.jobs.results import Box  # or detectors.base.Box: iou reads attributes

__all__ = ["pick_face", "iou"]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when apart)."""
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)


def pick_face(
    faces: Sequence[Detection], face_index: int | None = None, box: Box | None = None
) -> tuple[int | None, str, str]:
    """(index or None, status, message) of the face to enrol among ``faces`` (best score first).

    Statuses: ``enrolled`` (a face is picked), ``no_face``, ``several_faces`` (neither ``face_index``
    nor ``box`` says which), ``face_not_found`` (the index is out of range, or no face overlaps the box).
    """
    if not faces:
        return None, "no_face", "No face was found in the image."
    if box is not None:
        overlaps = [iou(f.box, box) for f in faces]
        best = max(range(len(faces)), key=overlaps.__getitem__)
        if overlaps[best] <= 0:
            return None, "face_not_found", "No face overlaps the given box."
        return best, "enrolled", ""
    if face_index is not None:
        if face_index >= len(faces):
            return None, "face_not_found", f"face_index {face_index} is out of range: {len(faces)} faces were found."
        return face_index, "enrolled", ""
    if len(faces) > 1:
        return None, "several_faces", f"{len(faces)} faces were found: pick one with face_index or box."
    return 0, "enrolled", ""
