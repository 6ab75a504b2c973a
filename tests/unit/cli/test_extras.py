"""Which extra a command needs, and the message when it is missing."""

from __future__ import annotations

import pytest
import typer

from detectflow.cli import extras


def test_install_hint_names_the_extras_and_the_pip_line():
    assert extras.install_hint("operator", ["operator"]) == (
        "`detectflow operator` needs the 'operator' extra of detectflow: pip install 'detectflow[operator]'")  # fmt: skip
    assert "the 'api' and 'worker' extras" in extras.install_hint("up", ["api", "worker"])
    assert "pip install 'detectflow[api,worker]'" in extras.install_hint("up", ["api", "worker"])


def test_require_extras_exits_2_when_a_module_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(extras.EXTRA_MODULES, "operator", ("kopf", "detectflow_no_such_module"))
    assert extras.missing_extras("operator") == ["operator"]
    with pytest.raises(typer.Exit) as exited:
        extras.require_extras("operator", "operator")
    assert exited.value.exit_code == 2
    assert "pip install 'detectflow[operator]'" in capsys.readouterr().err


def test_require_extras_passes_when_installed():
    extras.require_extras("operator", "operator")  # this venv has every extra
    assert extras.missing_extras("api", "worker", "operator") == []
