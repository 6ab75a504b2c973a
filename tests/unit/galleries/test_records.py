"""Gallery records: defaults, validation, the export format."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from detectflow.galleries.records import EXPORT_FORMAT, GalleryCreate, GalleryExport, SubjectCreate


def test_gallery_create_defaults_to_the_issue_thresholds():
    g = GalleryCreate(name="class")
    assert (g.thresholds.match, g.thresholds.uncertain) == (0.5, 0.6) and g.metadata == {}


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "x", "thresholds": {"match": 0.7, "uncertain": 0.6}},
                                  {"name": "x", "colour": "red"}])  # fmt: skip
def test_gallery_create_refuses_bad_bodies(body):
    with pytest.raises(ValidationError):
        GalleryCreate.model_validate(body)


def test_subject_create_needs_a_name():
    with pytest.raises(ValidationError):
        SubjectCreate.model_validate({"metadata": {}})


def test_gallery_export_format_is_fixed():
    data = {"name": "g", "subjects": [{"id": "s1", "name": "S", "faces": [{"id": "f", "embedding": [0.0] * 128}]}]}
    assert GalleryExport.model_validate(data).format == EXPORT_FORMAT
    with pytest.raises(ValidationError):
        GalleryExport.model_validate({**data, "format": "other/v9"})
    with pytest.raises(ValidationError):  # subject ids end up in Redis keys: a safe alphabet only
        GalleryExport.model_validate({"name": "g", "subjects": [{"id": "a:b", "name": "S"}]})
