"""The operator's log format: JSON in-cluster, text on a terminal."""

from __future__ import annotations

import json
import logging

import pytest
import typer

from detectflow.cli.operator import operator_log_format


def test_operator_log_format_is_json_unless_on_a_terminal():
    assert operator_log_format("auto", isatty=False) == "json"
    assert operator_log_format("auto", isatty=True) == "text"
    assert operator_log_format("json", isatty=True) == "json"
    assert operator_log_format("text", isatty=False) == "text"
    with pytest.raises(typer.BadParameter):
        operator_log_format("xml", isatty=False)


def test_kopf_json_format_writes_one_json_object_per_line(capsys):
    # Given kopf configured as `detectflow operator` does in-cluster
    import kopf

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        kopf.configure(log_format=kopf.LogFormat.JSON)
        # When kopf's logger writes, then each line is a JSON object with the message and level
        logging.getLogger("kopf.objects").warning("reconciled %s", "demo")
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        record = json.loads(lines[-1])
        assert record["message"] == "reconciled demo"
        assert record["severity"] == "warn"  # kopf's own level names
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
