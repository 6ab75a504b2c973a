"""Pure parts of operator/apply.py: the adoption refusal and the Secret label gate."""

from __future__ import annotations

from detectflow.operator.apply import conflict, secret_labelled


def test_conflict_when_live_object_lacks_this_pipelines_owner() -> None:
    mine = {"metadata": {"ownerReferences": [{"uid": "u1", "kind": "DetectionPipeline"}]}}
    other = {"metadata": {"ownerReferences": [{"uid": "u2"}]}}
    unowned = {"metadata": {"name": "x-api"}}
    assert conflict(None, "u1") is False  # nothing there: create it
    assert conflict(mine, "u1") is False
    assert conflict(other, "u1") is True
    assert conflict(unowned, "u1") is True


def test_secret_labelled_needs_the_exact_label_value() -> None:
    assert secret_labelled({"metadata": {"labels": {"detectflow.io/secret": "true"}}})
    assert not secret_labelled({"metadata": {"labels": {"detectflow.io/secret": "yes"}}})
    assert not secret_labelled({"metadata": {}})
