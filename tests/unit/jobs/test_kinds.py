"""Kinds and pools: the recognition kinds share one pool, its queue and its actor."""

from __future__ import annotations

from detectflow.config import Pool, Task
from detectflow.jobs.kinds import KINDS, kind_of, kinds_of_pool


def test_every_task_has_a_kind_and_every_pool_a_kind():
    assert set(KINDS) == set(Task)
    assert all(kinds_of_pool(p) for p in Pool)


def test_recognition_kinds_share_the_recognition_queue_and_actor():
    kinds = kinds_of_pool(Pool.recognition)
    assert {k.task for k in kinds} == {Task.embed, Task.enrol, Task.recognize, Task.verify, Task.match}
    assert {(k.queue, k.webhook_queue, k.actor_name) for k in kinds} == {
        ("detect.recognition", "webhook.recognition", "detect_recognition")
    }


def test_detection_kinds_keep_their_own_queue():
    assert kind_of("face").queue == "detect.face" and kind_of(Task.object).actor_name == "detect_object"
