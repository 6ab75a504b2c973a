"""`detectflow galleries`: list, create and delete face galleries, and enrol faces, through a running API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from detectflow.cli.client import DEFAULT_API_URL, ApiUrl, api_errors, open_client
from detectflow.client import JobWaitTimeout
from detectflow.jobs.records import JobStatus

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)
console = Console()

#: Exit status of `galleries enrol` when its job is still running at the timeout.
EXIT_TIMEOUT = 3


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per line.")] = False,
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """List the tenant's galleries, oldest first."""
    with api_errors(), open_client(api) as client:
        galleries = client.list_galleries()
    if as_json:
        for g in galleries:
            typer.echo(g.model_dump_json())
        return
    table = Table("id", "name", "subjects", "faces", "match", "uncertain", "created")
    for g in galleries:
        table.add_row(g.id, g.name, str(g.subjects), str(g.faces), f"{g.thresholds.match:g}",
                      f"{g.thresholds.uncertain:g}", f"{g.created_at:%Y-%m-%d %H:%M:%S}")  # fmt: skip
    console.print(table)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="The gallery's name.")],
    match: Annotated[float | None, typer.Option(help="Match distance (default 0.5).")] = None,
    uncertain: Annotated[float | None, typer.Option(help="Uncertain distance (default 0.6).")] = None,
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Create a gallery and print it as JSON (its id is what `enrol` and recognize jobs take)."""
    with api_errors(), open_client(api) as client:
        gallery = client.create_gallery(name, match_threshold=match, uncertain_threshold=uncertain)
    typer.echo(gallery.model_dump_json(indent=2))


@app.command()
def delete(
    gallery_id: Annotated[str, typer.Argument(help="The gallery's id.")],
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Delete a gallery with its subjects and faces."""
    with api_errors(), open_client(api) as client:
        client.delete_gallery(gallery_id)
    console.print(f"{gallery_id}: deleted")


@app.command()
def enrol(
    gallery_id: Annotated[str, typer.Argument(help="The gallery's id.")],
    subject: Annotated[str, typer.Argument(help="The subject's id, or a new subject's name (see --new).")],
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Images, one face each.")],
    new: Annotated[bool, typer.Option("--new", help="SUBJECT is a name: create that subject first.")] = False,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait for the enrol job.")] = 300.0,
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Enrol images of a subject (one enrol job) and print the job; exit 0 if it succeeded, 1 if not, 3 if running."""
    with api_errors(), open_client(api) as client:
        subject_id = client.create_subject(gallery_id, subject).id if new else subject
        try:
            job = client.enrol_faces(gallery_id, subject_id, list(files), wait=True, timeout=timeout)
        except JobWaitTimeout as exc:
            typer.echo(exc.job.model_dump_json(indent=2))
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_TIMEOUT) from None
    typer.echo(job.model_dump_json(indent=2))
    raise typer.Exit(0 if job.status is JobStatus.succeeded else 1)
