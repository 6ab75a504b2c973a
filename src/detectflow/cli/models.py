"""`detectflow models`: build the built-in models and list what is in the model directory."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
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


@app.command("list")
def list_models(model_dir: ModelDirOption = None) -> None:
    """Print the models in the model directory: name, task, path, sha256 and licence."""
    from detectflow.models.cards import card_is_current, load_card

    target = _model_dir(model_dir)
    table = Table(title=f"Models in {target}", title_justify="left")
    for col in ("name", "task", "variant", "path", "sha256", "licence", "status"):
        # the full sha256 stays on one line so it can be copied; other columns wrap instead
        table.add_column(col, overflow="fold", no_wrap=col == "sha256", min_width=64 if col == "sha256" else None)
    cards = sorted(target.glob("*.json")) if target.is_dir() else []
    for card_path in cards:
        try:
            card = load_card(card_path)
        except ValueError:
            continue
        status = "[green]ok[/green]" if card_is_current(card_path) else "[red]stale[/red]"
        for variant, f in card.files.items():
            table.add_row(card.name, card.task or "", f"{variant} ({f.precision})", f.path,
                          f.sha256 or "", card.licence, status)
    if not table.row_count:
        _console.print(f"no models in {target}: run `detectflow models build`")
        raise typer.Exit(1)
    _console.print(table)
