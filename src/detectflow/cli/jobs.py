"""`detectflow jobs`: get, wait for, cancel and list jobs through a running API (on `detectflow.client`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from detectflow.cli.client import DEFAULT_API_URL, ApiUrl, api_errors, open_client
from detectflow.client import JobWaitTimeout
from detectflow.client.calls import MAX_WAIT_SECONDS
from detectflow.config import Task
from detectflow.jobs.records import JobPublic, JobStatus

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)
console = Console()

#: Exit status of `jobs wait` when the job is still running at the timeout.
EXIT_TIMEOUT = 3


def _print_job(job: JobPublic) -> None:
    typer.echo(job.model_dump_json(indent=2))


def _exit_code(job: JobPublic) -> int:
    return 0 if job.status is JobStatus.succeeded else 1


@app.command()
def get(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    wait: Annotated[
        float, typer.Option(min=0, max=MAX_WAIT_SECONDS, help="Seconds to wait for the job to end (long poll).")
    ] = 0,
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Print a job as JSON (its status, and its result once it has succeeded)."""
    with api_errors(), open_client(api) as client:
        _print_job(client.get_job(job_id, wait))


@app.command()
def wait(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait at most.")] = 300.0,
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Wait for a job to end and print it as JSON; exit 0 if it succeeded, 1 if not, 3 if it is still running."""
    with api_errors(), open_client(api) as client:
        try:
            job = client.wait_job(job_id, timeout)
        except JobWaitTimeout as exc:
            _print_job(exc.job)
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_TIMEOUT) from None
    _print_job(job)
    raise typer.Exit(_exit_code(job))


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Cancel a job that has not started yet."""
    with api_errors(), open_client(api) as client:
        job = client.cancel_job(job_id)
    console.print(f"{job.id}: {job.status}")


@app.command("list")
def list_(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    task: Annotated[Task | None, typer.Option(help="Only jobs of this task.")] = None,
    created_after: Annotated[
        datetime | None, typer.Option(help="Only jobs created after this time.", formats=["%Y-%m-%dT%H:%M:%S%z",
                                      "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"])  # fmt: skip
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Jobs to show at most.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per line.")] = False,
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """List the tenant's jobs, newest first."""
    jobs: list[JobPublic] = []
    with api_errors(), open_client(api) as client:
        for job in client.iter_jobs(status=status, task=task, created_after=created_after, page_size=min(limit, 100)):
            jobs.append(job)
            if len(jobs) >= limit:
                break
    if as_json:
        for job in jobs:
            typer.echo(job.model_dump_json())
        return
    table = Table("id", "task", "status", "created", "found", "error")
    for job in jobs:
        detections = getattr(job.result, "detections", None)
        found = str(len(detections)) if detections is not None else ""
        table.add_row(job.id, job.task.value, job.status.value, f"{job.created_at:%Y-%m-%d %H:%M:%S}", found,
                      job.error.code.value if job.error else "")  # fmt: skip
    console.print(table)
