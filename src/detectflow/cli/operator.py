"""`detectflow operator`: run the kopf operator; render a pipeline's manifests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

__all__ = ["app"]

app = typer.Typer(
    name="operator",
    help="Run the DetectionPipeline operator (default) or render a pipeline's manifests.",
    invoke_without_command=True,
)


@app.callback()
def run(
    ctx: typer.Context,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            envvar="DETECTFLOW_OPERATOR_NAMESPACE",
            help="Namespace to watch (repeatable). Default: all namespaces.",
        ),
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Watch every namespace.")] = False,
    liveness: Annotated[
        str | None, typer.Option(help="Serve kopf's liveness probe here, e.g. http://0.0.0.0:8080/healthz.")
    ] = None,
    resync_seconds: Annotated[
        float, typer.Option(min=1, help="Re-apply and refresh status this often (seconds).")
    ] = 15.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: Annotated[
        str | None,
        typer.Option(help="auto (JSON unless on a terminal), json or text [default: DETECTFLOW_LOG_FORMAT, else auto]."),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, envvar="DETECTFLOW_OPERATOR_METRICS_PORT", help="Serve Prometheus /metrics here; 0: off."
        ),
    ] = 0,
    metrics_host: Annotated[
        str, typer.Option(envvar="DETECTFLOW_OPERATOR_METRICS_HOST", help="Bind address of /metrics.")
    ] = "0.0.0.0",
) -> None:
    """Run the operator until interrupted (SIGINT/SIGTERM)."""
    if ctx.invoked_subcommand is not None:
        return
    if namespace and all_namespaces:
        raise typer.BadParameter("use either --namespace or --all-namespaces")
    import kopf

    from detectflow.operator.handlers import register

    from detectflow.config import get_settings

    fmt = operator_log_format(log_format or get_settings().log_format, sys.stderr.isatty())
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if fmt == "json" else kopf.LogFormat.PLAIN)
    registry = kopf.OperatorRegistry()
    register(registry, resync_seconds=resync_seconds, metrics_port=metrics_port, metrics_host=metrics_host)
    kopf.run(
        registry=registry,
        clusterwide=not namespace,
        namespaces=namespace or (),
        liveness_endpoint=liveness,
        standalone=True,
    )


def operator_log_format(fmt: str, isatty: bool) -> str:
    """The operator's log format: ``json`` (kopf's JSON lines, one object per event, in-cluster) or ``text``.

    Parameters
    ----------
    fmt
        ``auto``, ``json`` or ``text`` (DETECTFLOW_LOG_FORMAT); ``auto`` is JSON unless stderr is a terminal.
    isatty
        Whether stderr is a terminal.

    Raises
    ------
    typer.BadParameter
        For any other value.
    """
    if fmt not in ("auto", "json", "text"):
        raise typer.BadParameter(f"log format must be auto, json or text, not {fmt!r}")
    if fmt == "auto":
        return "text" if isatty else "json"
    return fmt


def _pipelines(path: Path) -> list[dict[str, Any]]:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    from detectflow.operator.crd import KIND

    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == KIND]


@app.command()
def render(
    file: Annotated[Path, typer.Option("--file", "-f", help="DetectionPipeline YAML ('-' for stdin).")],
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace if the file has none.")
    ] = None,
) -> None:
    """Print the manifests the operator would apply for each DetectionPipeline in FILE.

    Without a uid (a file, not a live object) the manifests carry no ownerReferences.
    """
    import pydantic

    from detectflow.operator.crd import DetectionPipeline, dump_yaml
    from detectflow.operator.render import render_all

    out: list[dict[str, Any]] = []
    for doc in _pipelines(file):
        meta = dict(doc.get("metadata") or {})
        meta["namespace"] = meta.get("namespace") or namespace or "default"
        try:
            pipeline = DetectionPipeline.from_body({**doc, "metadata": meta})
        except pydantic.ValidationError as exc:
            raise typer.BadParameter(f"{meta.get('name')}: {exc}") from exc
        out.extend(render_all(pipeline))
    if not out:
        raise typer.BadParameter(f"no DetectionPipeline in {file}")
    sys.stdout.write(dump_yaml(*out))
