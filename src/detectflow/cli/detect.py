"""`detectflow detect`: submit images to a running API, wait, print detections, save annotated images."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from detectflow.config import Task

__all__ = ["register"]

FINAL = {"succeeded", "failed", "cancelled"}


def _submit(client: httpx.Client, path: Path, task: Task) -> dict:
    with path.open("rb") as fh:
        resp = client.post("/v1/jobs", files={"file": (path.name, fh)}, data={"task": task.value})
    if resp.status_code >= 400:
        err = resp.json().get("error", {})
        raise RuntimeError(f"{err.get('code', resp.status_code)}: {err.get('message', resp.text)}")
    return resp.json()


def register(app: typer.Typer) -> None:
    @app.command()
    def detect(
        images: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Image files.")],
        task: Annotated[Task, typer.Option(help="What to detect.")] = Task.face,
        api: Annotated[str, typer.Option(envvar="DETECTFLOW_API_URL", help="API base URL.")] = "http://127.0.0.1:8000",
        out: Annotated[Path | None, typer.Option(file_okay=False, help="Write annotated PNGs here.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON lines.")] = False,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for each job.")] = 300.0,
    ) -> None:
        """Detect faces or objects in IMAGES through a running detectflow API."""
        console = Console(stderr=as_json)
        failed = 0
        from detectflow.cli.client import auth_headers
        from detectflow.config import get_settings

        with httpx.Client(base_url=api, timeout=30, headers=auth_headers(get_settings())) as client:
            jobs: dict[str, tuple[Path, dict]] = {}
            for path in images:
                try:
                    job = _submit(client, path, task)
                    jobs[job["id"]] = (path, job)
                except (RuntimeError, httpx.HTTPError) as exc:
                    console.print(f"[red]{path}: {exc}[/]")
                    failed += 1
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
            ) as progress:
                bars = {jid: progress.add_task(f"{p.name}: queued") for jid, (p, _) in jobs.items()}
                deadline = time.monotonic() + timeout
                pending = set(jobs)
                while pending and time.monotonic() < deadline:
                    # one job left: long-poll it instead of polling
                    wait = 2 if len(pending) == 1 else 0
                    for jid in list(pending):
                        job = client.get(f"/v1/jobs/{jid}", params={"wait": wait}).json()
                        jobs[jid] = (jobs[jid][0], job)
                        progress.update(bars[jid], description=f"{jobs[jid][0].name}: {job['status']}")
                        if job["status"] in FINAL:
                            pending.discard(jid)
                    if wait == 0:
                        time.sleep(0.1)
            for jid, (path, job) in jobs.items():
                if as_json:
                    print(json.dumps(job))
                if job["status"] != "succeeded":
                    err = job.get("error") or {}
                    console.print(f"[red]{path}: {job['status']} {err.get('code', '')} {err.get('message', '')}[/]")
                    failed += 1
                    continue
                if not as_json:
                    _print_table(console, path, job)
                if out is not None:
                    out.mkdir(parents=True, exist_ok=True)
                    png = client.get(f"/v1/jobs/{jid}/annotated")
                    png.raise_for_status()
                    target = out / f"{path.stem}.{task.value}.png"
                    target.write_bytes(png.content)
                    console.print(f"annotated image: {target}")
        raise typer.Exit(1 if failed else 0)


def _print_table(console: Console, path: Path, job: dict) -> None:
    result = job["result"]
    img, model, timing = result["image"], result["model"], result["timings_ms"]
    table = Table(
        title=f"{path.name}: {len(result['detections'])} detection(s)",
        caption=f"{img['width']}x{img['height']} px · {model['name']} on {model['provider']} · "
        f"inference {timing['inference']:.1f} ms, total {timing['total']:.1f} ms",
    )
    for col in ("label", "score", "x", "y", "width", "height"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for d in result["detections"]:
        b = d["box"]
        table.add_row(d["label"], f"{d['score']:.3f}", *(f"{b[k]:.0f}" for k in ("x", "y", "width", "height")))
    console.print(table)
