"""Unit tests of the Redis key layout."""

from __future__ import annotations

from detectflow.jobs.kinds import kind_of
from detectflow.keys import KeyLayout, detect_queue, pipeline_prefix, webhook_queue


def test_keys_share_one_prefix_and_match_dramatiq_layout():
    keys = KeyLayout(pipeline_prefix("ns", "p1"))
    assert keys.job("j").startswith("detectflow:ns:p1:job:")
    assert keys.queue_messages("detect.face") == "detectflow:ns:p1:detect.face.msgs"
    assert keys.delayed_messages("detect.face") == "detectflow:ns:p1:detect.face.DQ.msgs"


def test_keys_depth_is_unfinished_plus_delayed_work():
    keys = KeyLayout("p")
    assert keys.depth_keys("detect.object") == ("p:detect.object.msgs", "p:detect.object.DQ.msgs")


def test_keys_queue_names_of_a_kind():
    assert kind_of("face").queue == detect_queue("face") == "detect.face"
    assert kind_of("object").webhook_queue == webhook_queue("object") == "webhook.object"


def test_keys_every_job_key_lives_under_the_job():
    keys = KeyLayout("p")
    for key in (keys.annotated("j"),):
        assert key.startswith(keys.job("j") + ":")
    assert keys.done_channel().startswith("p:")
