"""int8 CPU variants: golden detections, the build's accuracy report, runtime selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectflow.config import Settings, Task
from detectflow.detectors import load_detector, load_embedder
from detectflow.detectors.base import Detector
from detectflow.models import photos
from detectflow.models.accuracy import AccuracyBounds, ImageComparison, compare_detections, decide
from detectflow.models.cards import load_card
from tests.models.golden import best_iou, box_of, iou_xywh, load_golden
from tests.models.mosaic import face_mosaic
from tests.support.images import image_bgr

FACES = load_golden("faces")
OBJECTS = load_golden("objects")
CARDS = ("retinaface-mnet025", "nanodet-g")


@pytest.mark.parametrize("name", sorted(FACES["images"]))
def test_int8_face_detector_matches_the_fp32_golden_boxes(face_detector_int8: Detector, name: str) -> None:
    # Given a shipped photo and the golden faces of the fp32 model
    expected = FACES["images"][name]
    assert face_detector_int8.info.precision == "int8"
    # When the int8 model detects faces at the default threshold
    dets = face_detector_int8.detect(image_bgr(name))
    # Then it finds exactly the golden faces, in the same places
    assert len(dets) == len(expected), [box_of(d) for d in dets]
    for e in expected:
        assert best_iou(e, dets) >= FACES["min_iou"]


@pytest.mark.parametrize("name", sorted(OBJECTS["images"]))
def test_int8_object_detector_matches_the_fp32_golden_boxes(object_detector_int8: Detector, name: str) -> None:
    expected = OBJECTS["images"][name]
    assert object_detector_int8.info.precision == "int8"
    dets = object_detector_int8.detect(image_bgr(name))
    if not expected:
        assert dets == []
    for e in expected:
        assert best_iou(e, dets) >= OBJECTS["min_iou"], (e, [(d.label, box_of(d)) for d in dets])


def test_int8_face_detector_finds_every_face_of_the_mosaic(face_detector_int8: Detector) -> None:
    sources = {n: FACES["images"][n][0]["box"] for n in ("astronaut", "grace_hopper", "camera")}
    mosaic, expected = face_mosaic(sources)
    dets = face_detector_int8.detect(mosaic)
    assert len(dets) == len(expected)
    for e in expected:
        assert max(iou_xywh(e, box_of(d)) for d in dets) >= 0.75


def test_int8_face_detector_keeps_fp32_detections_on_the_golden_photos(
    face_detector: Detector, face_detector_int8: Detector
) -> None:
    # Given the fp32 and int8 face models; when both run on every golden photo (installed copies)
    comparisons = [compare_detections(n, face_detector.detect(image_bgr(n)), face_detector_int8.detect(image_bgr(n)))
                   for n in photos.GOLDEN_PHOTOS]
    # Then the accuracy rule passes on them: same faces at IoU >= 0.9, scores within the bound
    assert decide(comparisons) == (True, [])


@pytest.mark.parametrize("name", CARDS)
def test_int8_accuracy_report_in_the_card_decides_the_cpu_default(model_dir: Path, name: str) -> None:
    card = load_card(model_dir / f"{name}.json")
    v = card.verification["int8"]
    report = v["report"]
    # Every image of the report's set was measured: golden photos, every sample photo, the mosaics
    measured = [i["image"] for i in report["images"]]
    assert measured[: len(photos.GOLDEN_PHOTOS)] == list(photos.GOLDEN_PHOTOS)
    assert {f"face_mosaic_{h}" for h in photos.MOSAIC_HEIGHTS} <= set(measured)
    assert {"fr_obama", "fr_biden", "motorcycle_right"} <= set(measured) - set(v["calibration_images"])
    assert report["all"]["images"] == len(measured) >= 40
    # The verdict is the rule applied to the recorded comparisons, and it sets the CPU default
    comparisons = [ImageComparison(**i) for i in report["images"]]
    bounds = AccuracyBounds(**report["bounds"])
    assert decide(comparisons, bounds) == (report["passed"], report["reasons"])
    assert card.cpu_precision == ("int8" if report["passed"] else "fp32")
    assert card.files["cpu_int8"].precision == "int8"
    assert v["quantization"]["format"] == "QDQ" and v["quantization"]["opset"] == 13
    # fp32 against its own noisy input is recorded beside it, as the yardstick of the bound
    assert v["fp32_noise"]["all"]["images"] == len(measured)


def test_int8_face_report_keeps_every_golden_and_mosaic_face(model_dir: Path) -> None:
    report = load_card(model_dir / "retinaface-mnet025.json").verification["int8"]["report"]
    assert report["golden"]["lost"] == report["golden"]["gained"] == 0
    faces = [i for i in report["images"] if i["image"].startswith(("face_mosaic", "fr_")) or
             i["image"] in ("astronaut", "grace_hopper", "camera")]
    assert all(not i["lost"] and not i["gained"] for i in faces), faces


def test_int8_face_report_passes_so_int8_is_the_face_cpu_default(model_dir: Path) -> None:
    # Given the face card: calibrated at one size, its float stem chosen on the calibration images
    card = load_card(model_dir / "retinaface-mnet025.json")
    q = card.verification["int8"]["quantization"]
    assert q["calibration_size"] == [480, 640] and q["float_stem_convs"] == 11 and "calibration" in q["float_stem_choice"]
    # Then its report passes the unchanged rule and int8 is what auto loads on CPU
    assert card.verification["int8"]["report"]["passed"] and card.cpu_precision == "int8"


@pytest.mark.parametrize("task", [Task.face, Task.object])
@pytest.mark.parametrize("setting", ["auto", "int8", "fp32"])
def test_load_detector_reports_the_precision_in_use(model_settings: Settings, task: Task, setting: str) -> None:
    settings = model_settings.model_copy(update={"cpu_precision": setting})
    d = load_detector(task, settings)
    card = d.card
    want = {"int8": "int8", "fp32": "fp32", "auto": card.cpu_precision}[setting]
    assert d.info.precision == want == d.info.to_dict()["precision"]
    variant = "cpu_int8" if want == "int8" else "cpu"
    assert d.info.sha256 == card.files[variant].sha256 and d.info.extra["variant"] == variant


def test_embedder_without_an_int8_file_runs_fp32_whatever_cpu_precision_says(int8_settings: Settings) -> None:
    # Given the built embedder (its card has no cpu_int8 file) and DETECTFLOW_CPU_PRECISION=int8
    embedder = load_embedder(int8_settings)
    # Then it opens its fp32 CPU file through the same selection as the detectors
    assert "cpu_int8" not in embedder.card.files
    assert embedder.info.precision == "fp32" and embedder.info.extra["variant"] == "cpu"
    assert embedder.info.sha256 == embedder.card.files["cpu"].sha256
