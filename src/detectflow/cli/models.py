"""`detectflow models`: build the built-in models and list what is in the model directory."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["app"]

app = typer.Typer(name="models", help="Build and list detection and face-embedding models.", no_args_is_help=True)
_console = Console()

ModelDirOption = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Model directory (default: DETECTFLOW_MODEL_DIR or ~/.cache/detectflow/models)."),
]


class _Only(StrEnum):
    face = "face"
    object = "object"
    embed = "embed"


def _model_dir(model_dir: Path | None) -> Path:
    if model_dir is not None:
        return model_dir.expanduser()
    from detectflow.config import Settings

    return Settings().model_dir.expanduser()


@app.command("build")
def build(
    only: Annotated[_Only | None, typer.Option("--only", help="Build only this task's model.")] = None,
    model_dir: ModelDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the files match their cards.")] = False,
) -> None:
    """Build every built-in model (fetch, verify sha256, export to ONNX, measure, write cards)."""
    from detectflow.cli.extras import require_extras

    require_extras("models build", "build")
    from detectflow.models.build import BuildError, build_models

    logging.basicConfig(level=logging.WARNING)
    target = _model_dir(model_dir)
    try:
        results = build_models(
            target, [only.value] if only else None, force=force,
            progress=lambda msg: _console.print(f"[dim]•[/dim] {msg}"),
        )
    except BuildError as exc:
        _console.print(f"[bold red]build failed:[/bold red] {exc}")
        raise typer.Exit(1) from exc
    for r in results:
        state = "[green]built[/green]" if r.built else "up to date"
        _console.print(f"{r.name}: {state} ({r.seconds:.1f} s) -> {r.card_path}")


#: Console columns below which `models list` shows sha256 prefixes (the full digests are in --json).
FULL_SHA256_MIN_WIDTH = 150
SHORT_SHA256 = 12  # hex digits shown when the console is narrow
_MIN_WIDTHS = {"licence": 10}  # characters: a narrow licence column wraps into one word per line


@app.command("list")
def list_models(
    model_dir: ModelDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list (full sha256 and paths).")] = False,
) -> None:
    """Print the models in the model directory: name, task, variant, file, sha256, licence and status."""
    import json

    from detectflow.models.cards import card_is_current, load_card

    target = _model_dir(model_dir)
    rows = []
    cards = sorted(target.glob("*.json")) if target.is_dir() else []
    for card_path in cards:
        try:
            card = load_card(card_path)
        except ValueError:
            continue
        status = "ok" if card_is_current(card_path) else "stale"
        for variant, f in card.files.items():
            rows.append({"name": card.name, "task": card.task, "variant": variant, "precision": f.precision,
                         "path": str(target / f.path), "sha256": f.sha256 or "", "licence": card.licence,
                         "status": status})  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        _console.print(f"no models in {target}: run `detectflow models build`")
        raise typer.Exit(1)
    _console.print(models_table(rows, target, _console.width))


def models_table(rows: list[dict], target: Path, width: int) -> Table:
    """The `models list` table for a console ``width`` columns wide.

    Below ``FULL_SHA256_MIN_WIDTH`` columns (80 when piped) the sha256 is cut to a prefix, the file column is left
    out and the borders are lighter, so names, variants and digests stay on one line each; ``--json`` has it all.
    """
    full = width >= FULL_SHA256_MIN_WIDTH
    table = Table(title=f"Models in {target}", title_justify="left", box=box.HEAVY_HEAD if full else None,
                  pad_edge=full, show_edge=full)  # fmt: skip
    columns = ("name", "task", "variant", "file", "sha256", "licence", "status") if full else (
        "name", "task", "variant", "sha256", "licence", "status")  # fmt: skip
    for col in columns:
        # the sha256, names and variants stay on one line so they can be copied; the licence wraps instead
        table.add_column(col, overflow="fold", no_wrap=col != "licence", min_width=_MIN_WIDTHS.get(col) if not full else 64 if col == "sha256" else None)
    for r in rows:
        digest = r["sha256"] if full or len(r["sha256"]) <= SHORT_SHA256 else r["sha256"][:SHORT_SHA256] + "…"
        status = "[green]ok[/green]" if r["status"] == "ok" else "[red]stale[/red]"
        cells = {"name": r["name"], "task": r["task"] or "", "variant": f"{r['variant']} {r['precision']}",
                 "file": Path(r["path"]).name, "sha256": digest, "licence": r["licence"], "status": status}  # fmt: skip
        table.add_row(*(cells[c] for c in columns))
    return table
