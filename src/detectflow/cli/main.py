"""The `detectflow` command line (Typer + rich)."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import Annotated

import typer

from detectflow import __version__
from detectflow.cli.extras import install_hint, missing_extras, require_extras
from detectflow.config import Pool, get_settings

app = typer.Typer(
    name="detectflow",
    help="Face and object detection as asynchronous jobs: run the platform, submit images, manage models.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"detectflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Face and object detection as asynchronous jobs: run the platform, submit images, manage models."""


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address [default: DETECTFLOW_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: DETECTFLOW_API_PORT].")] = None,
) -> None:
    """Run the REST API (uvicorn)."""
    require_extras("api", "api")
    import uvicorn

    from detectflow.api.server import raise_open_files_limit, uvicorn_options
    from detectflow.logs import setup_logging

    s = get_settings()
    setup_logging(s.log_level, s.log_format)
    try:
        s.check_bind(host or s.api_host)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    raise_open_files_limit(s.api_limit_concurrency)
    _limit_decoder(os.environ, s.api_max_image_pixels)  # before the app imports cv2
    uvicorn.run(
        "detectflow.api.app:create_app",
        factory=True,
        host=host or s.api_host,
        port=port or s.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        **uvicorn_options(s),
    )


@app.command()
def worker(
    task: Annotated[Pool, typer.Option(help="Which pool's queue to serve.")] = Pool.face,
    processes: Annotated[int | None, typer.Option(help="Processes [default: DETECTFLOW_WORKER_PROCESSES].")] = None,
    threads: Annotated[
        int | None, typer.Option(help="Jobs at once per process [default: DETECTFLOW_WORKER_THREADS, else one per core].")
    ] = None,
) -> None:
    """Run a Dramatiq worker for one task (replaces this process, so signals reach Dramatiq)."""
    require_extras("worker", "worker")
    from detectflow.worker.layout import choose_max_batch
    from detectflow.detectors.runtime import choose_providers
    from detectflow.jobs.kinds import kinds_of_pool
    from detectflow.worker.layout import available_cores, choose_layout

    s = get_settings()
    kind = kinds_of_pool(task)[0]  # a pool's kinds share its queues
    gpu = s.device != "cpu" and choose_providers(s.device)[0] != "CPUExecutionProvider"
    max_batch = choose_max_batch(s.worker_max_batch, gpu)
    # CPU: one job per core, one intra-op thread each, unless set; a GPU worker keeps one job in hand;
    # with batching, enough jobs in hand to fill the batches
    default_threads = (2 * max_batch if max_batch > 1 else 1) if gpu else 0
    layout = choose_layout(
        available_cores(), threads or s.worker_threads or default_threads, s.intra_op_threads, max_batch
    )
    threads = layout.threads
    env = dict(os.environ)
    env["DETECTFLOW_WORKER_TASK"] = task.value
    env["DETECTFLOW_WORKER_THREADS"] = str(threads)
    env["DETECTFLOW_INTRA_OP_THREADS"] = str(layout.intra_op_threads)
    # numpy's BLAS (gallery search) gets the same threads per job as onnxruntime, not one per core each
    env.setdefault("OPENBLAS_NUM_THREADS", str(layout.intra_op_threads or 1))
    env.setdefault("OMP_NUM_THREADS", str(layout.intra_op_threads or 1))  # and faiss's OpenMP scans
    # One message in hand per thread: a busy pod never hoards jobs another pod could run.
    env["dramatiq_queue_prefetch"] = str(threads)
    # Dramatiq's worker processes log through pipes: decide "auto" here, where the terminal is known.
    env["DETECTFLOW_LOG_FORMAT"] = _resolved_log_format(s.log_format)
    _limit_decoder(env, s.api_max_image_pixels)
    processes = processes or s.worker_processes
    if s.worker_metrics_port and processes > 1:
        # one port for all processes: prometheus_client's multiprocess mode, in a directory of this run
        import tempfile

        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="detectflow-worker-metrics-")
    args = [
        sys.executable, "-m", "dramatiq", "detectflow.worker.main",
        "--processes", str(processes),
        "--threads", str(threads),
        "--queues", kind.queue, kind.webhook_queue,
        # Running jobs may finish on SIGTERM; the pod's grace period is set above this.
        "--worker-shutdown-timeout", str((s.worker_time_limit_seconds + 5) * 1000),
    ]  # fmt: skip
    os.execve(sys.executable, args, env)


def _limit_decoder(env: MutableMapping[str, str], max_pixels: int) -> None:
    """OpenCV refuses to allocate an image above ``max_pixels`` (its variable is read once, at import)."""
    env.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(max_pixels))


def _resolved_log_format(fmt: str) -> str:
    if fmt != "auto":
        return fmt
    return "text" if sys.stderr.isatty() else "json"


def _mount_missing(name: str, help_: str, extras: tuple[str, ...]) -> None:
    """A stand-in for a command group whose extra is not installed: it says which extra to install (exit 2)."""

    @app.command(name, help=f"{help_} (needs the {', '.join(extras)} extra)",
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})  # fmt: skip
    def _missing(ctx: typer.Context) -> None:
        typer.echo(install_hint(name, missing_extras(*extras) or list(extras)), err=True)
        raise typer.Exit(2)


def _mount_optional() -> None:
    for module, name, help_, extras in (
        ("detectflow.cli.jobs", "jobs", "Get, wait for, cancel and list jobs.", ()),
        ("detectflow.cli.galleries", "galleries", "List, create and delete face galleries; enrol faces.", ()),
        ("detectflow.cli.models", "models", "Build and list the ONNX models.", ()),
        ("detectflow.cli.operator", "operator", "Run the Kubernetes operator; render manifests.", ("operator",)),
        ("detectflow.cli.keys", "keys", "Create, list and revoke API keys (admin).", ()),
        ("detectflow.cli.blobs", "blobs", "Sweep expired blobs (inputs, annotated images, uploads).", ("api",)),
        ("detectflow.cli.up", None, None, ()),
        ("detectflow.cli.detect", None, None, ()),
    ):
        if name and extras and missing_extras(*extras):
            _mount_missing(name, help_, extras)
            continue
        try:
            mod = __import__(module, fromlist=["app"])
        except ImportError as exc:
            if exc.name and exc.name.startswith("detectflow.cli"):
                continue
            raise
        if name:
            app.add_typer(mod.app, name=name, help=help_)
        else:
            mod.register(app)


_mount_optional()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
