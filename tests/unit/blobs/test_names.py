"""Blob names: content-addressed, and nothing else reaches a path or an object key."""

from __future__ import annotations

import hashlib

import pytest

from detectflow.blobs import blob_expires_at, content_name, input_name
from detectflow.blobs.base import check_name


def test_names_are_the_sha256_of_the_content():
    digest = hashlib.sha256(b"png").hexdigest()
    assert content_name("annotated", b"png", ".png") == f"annotated/{digest}.png"
    assert input_name(digest) == f"inputs/{digest}"


@pytest.mark.parametrize("bad", ["", "inputs/../etc", "../inputs/" + "0" * 64, "inputs/" + "g" * 64, "/inputs/" + "0" * 64])
def test_names_refuse_anything_but_a_group_and_a_digest(bad):
    with pytest.raises(ValueError):
        check_name(bad)


def test_names_blob_expiry_follows_the_record():
    assert blob_expires_at(60, 1000.0) == 1060.0
