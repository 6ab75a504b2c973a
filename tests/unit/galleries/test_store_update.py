"""apply_update: a PATCH's given fields replace the gallery's, thresholds merged one by one and checked in order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from detectflow.galleries.records import Gallery, GalleryUpdate
from detectflow.galleries.store import apply_update


def _gallery() -> dict:
    return Gallery(id="g", name="class", thresholds={"match": 0.5, "uncertain": 0.6}, metadata={"a": 1}).model_dump()


def test_apply_update_keeps_absent_fields_and_merges_thresholds():
    out = apply_update(_gallery(), GalleryUpdate(thresholds={"match": 0.4}))
    assert out["name"] == "class" and out["metadata"] == {"a": 1}
    assert out["thresholds"] == {"match": 0.4, "uncertain": 0.6}
    renamed = apply_update(_gallery(), GalleryUpdate(name="class-4", metadata={}))
    assert renamed["name"] == "class-4" and renamed["metadata"] == {} and renamed["thresholds"]["match"] == 0.5


def test_apply_update_refuses_thresholds_out_of_order_once_merged():
    with pytest.raises(ValidationError, match="uncertain must be >= thresholds.match"):
        Gallery.model_validate(apply_update(_gallery(), GalleryUpdate(thresholds={"match": 0.7})))


@pytest.mark.parametrize("body", [{"name": ""}, {"thresholds": {"match": 0}}, {"version": 3}])
def test_gallery_update_refuses_bad_bodies(body):
    with pytest.raises(ValidationError):
        GalleryUpdate.model_validate(body)
