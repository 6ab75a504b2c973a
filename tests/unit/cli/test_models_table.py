"""`detectflow models list`: a table that stays readable at 80 columns, full digests when there is room."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from detectflow.cli.models import models_table

ROWS = [
    {"name": "retinaface-mnet025", "task": "face", "variant": "cpu_int8", "precision": "int8",
     "path": "/m/retinaface-mnet025.int8.onnx", "sha256": "ede17c71ec71c6e9f314cb5c72cde93288999b407830b5a8b1c7f651a457cb13",
     "licence": "MIT (package); Apache-2.0 (NanoDet)", "status": "ok"},
]  # fmt: skip


def _render(width: int) -> list[str]:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    console.print(models_table(ROWS, Path("/m"), width))
    return console.export_text().splitlines()


def test_models_table_at_80_columns_keeps_names_variants_and_digest_prefixes_on_one_line():
    lines = _render(80)
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if "retinaface" in line)
    for cell in ("retinaface-mnet025", "face", "cpu_int8 int8", "ede17c71ec71…", "ok"):
        assert cell in row


def test_models_table_shows_the_full_digest_and_file_when_wide():
    text = "\n".join(_render(200))
    assert ROWS[0]["sha256"] in text and "retinaface-mnet025.int8.onnx" in text
