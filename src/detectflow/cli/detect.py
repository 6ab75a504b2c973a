"""`detectflow detect`: submit images to a running API, wait, print detections, save annotated images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from detectflow.cli.client import DEFAULT_API_URL, open_client
from detectflow.client import ApiError, ClientError, JobWaitTimeout
from detectflow.config import Task
from detectflow.jobs.records import JobPublic, JobStatus
from detectflow.jobs.results import DetectionResult

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def detect(
        images: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Image files.")],
        task: Annotated[Task, typer.Option(help="What to detect.")] = Task.face,
        api: Annotated[str, typer.Option(envvar="DETECTFLOW_API_URL", help="API base URL.")] = DEFAULT_API_URL,
        out: Annotated[Path | None, typer.Option(file_okay=False, help="Write annotated PNGs here.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON lines.")] = False,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for each job.")] = 300.0,
    ) -> None:
        """Detect faces or objects in IMAGES through a running detectflow API.

        A submit the API refuses for a while (429 rate limited, 503 queue full) is retried after its Retry-After.
        """
        console = Console(stderr=as_json)
        failed = 0
        with open_client(api) as client:
            jobs: dict[str, tuple[Path, JobPublic]] = {}
            for path in images:
                try:
                    job = client.submit(path, task.value)
                    jobs[job.id] = (path, job)
                except (ClientError, OSError) as exc:
                    console.print(f"[red]{path}: {exc}[/]")
                    failed += 1
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
            ) as progress:
                deadline = time.monotonic() + timeout
                for jid, (path, job) in jobs.items():
                    bar = progress.add_task(f"{path.name}: {job.status}")
                    try:  # the jobs run side by side on the workers: waiting for each in turn costs nothing
                        job = client.wait_job(jid, max(0.0, deadline - time.monotonic()))
                    except JobWaitTimeout as exc:
                        job = exc.job
                    except ClientError as exc:
                        console.print(f"[red]{path}: {exc}[/]")
                    jobs[jid] = (path, job)
                    progress.update(bar, description=f"{path.name}: {job.status}")
            for jid, (path, job) in jobs.items():
                if as_json:
                    print(job.model_dump_json())
                if job.status is not JobStatus.succeeded:
                    err = job.error
                    console.print(f"[red]{path}: {job.status} {err.code if err else ''} {err.message if err else ''}[/]")
                    failed += 1
                    continue
                if not as_json:
                    _print_table(console, path, job)
                if out is not None:
                    out.mkdir(parents=True, exist_ok=True)
                    try:
                        png = client.annotated(jid)
                    except ApiError as exc:
                        console.print(f"[red]{path}: annotated image: {exc}[/]")
                        failed += 1
                        continue
                    target = out / f"{path.stem}.{task.value}.{'png' if isinstance(job.result, DetectionResult) else 'webm'}"
                    target.write_bytes(png)
                    console.print(f"annotated image: {target}")
        raise typer.Exit(1 if failed else 0)


def _print_table(console: Console, path: Path, job: JobPublic) -> None:
    result = job.result
    if not isinstance(result, DetectionResult):  # a video: its frames are paged (`detectflow jobs get`, /frames)
        console.print(f"{path.name}: job {job.id} succeeded; `detectflow jobs get {job.id}` prints its result")
        return
    img, model, timing = result.image, result.model, result.timings_ms
    table = Table(
        title=f"{path.name}: {len(result.detections)} detection(s)",
        caption=f"{img.width}x{img.height} px · {model.name} on {model.provider} · "
        f"inference {timing.inference:.1f} ms, total {timing.total:.1f} ms",
    )
    for col in ("label", "score", "x", "y", "width", "height"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for d in result.detections:
        b = d.box
        table.add_row(d.label, f"{d.score:.3f}", *(f"{v:.0f}" for v in (b.x, b.y, b.width, b.height)))
    console.print(table)
