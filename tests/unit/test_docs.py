"""docs/ stays true: generated reference sections match the code."""

from __future__ import annotations

import re
from pathlib import Path

from detectflow.config import Settings, settings_reference
from detectflow.jobs.errors import HTTP_STATUS, JOB_FAILURE_CODES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_configuration_doc_matches_settings():
    text = (DOCS / "configuration.md").read_text()
    generated = re.search(r"<!-- BEGIN GENERATED -->\n(.*)\n<!-- END GENERATED -->", text, re.S)
    assert generated, "docs/configuration.md lost its generated section"
    assert generated.group(1).strip() == settings_reference().strip(), "run: python -m detectflow.config"
    for name in Settings.model_fields:
        assert f"DETECTFLOW_{name.upper()}" in text


def test_api_doc_lists_every_error_code():
    text = (DOCS / "api.md").read_text()
    for code, status in HTTP_STATUS.items():
        assert f"`{code.value}`" in text, code
    for code in JOB_FAILURE_CODES:
        assert f"`{code.value}`" in text, code
