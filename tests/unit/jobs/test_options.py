"""options_for: the form fields of POST /v1/jobs as each kind's options."""

from __future__ import annotations

import pytest

from detectflow.jobs.options import RecognizeOptions, VerifyOptions, options_for


def test_options_for_recognize_and_verify():
    rec = options_for("recognize", gallery_id="g", top_k=5, match=0.4)
    assert isinstance(rec, RecognizeOptions) and rec.top_k == 5
    assert (rec.thresholds.match, rec.thresholds.uncertain) == (0.4, 0.6)
    assert options_for("recognize", gallery_id="g").thresholds is None
    ver = options_for("verify", gallery_id="g", subject_id="s")
    assert isinstance(ver, VerifyOptions) and ver.subject_id == "s"
    assert options_for("verify", has_reference=True).subject_id is None
    assert options_for("face") is None and options_for("embed") is None


@pytest.mark.parametrize(
    ("task", "fields"),
    [
        ("recognize", {}),
        ("recognize", {"gallery_id": "g", "has_reference": True}),
        ("verify", {}),
        ("verify", {"gallery_id": "g", "subject_id": "s", "has_reference": True}),
        ("verify", {"has_reference": True, "top_k": 2}),
        ("face", {"gallery_id": "g"}),
        ("embed", {"has_reference": True}),
        ("enrol", {"gallery_id": "g"}),
        ("match", {"gallery_id": "g"}),  # POST /v1/galleries/{g}/match makes match jobs
    ],
)
def test_options_for_refuses_fields_a_task_does_not_take(task, fields):
    with pytest.raises(ValueError):
        options_for(task, **fields)
