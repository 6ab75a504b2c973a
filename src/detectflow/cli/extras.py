"""Which optional extras a command needs, and a clear exit when one is not installed."""

from __future__ import annotations

import importlib.util

import typer

__all__ = ["EXTRA_MODULES", "missing_extras", "require_extras", "install_hint"]

#: The modules that show an extra is installed (pyproject.toml's [project.optional-dependencies]).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "api": ("fastapi", "uvicorn", "multipart", "dramatiq", "redis", "cv2", "PIL", "numpy", "prometheus_client"),
    "worker": ("dramatiq", "onnxruntime", "redis", "cv2", "PIL", "numpy", "prometheus_client", "norfair"),
    "operator": ("kopf", "kubernetes", "yaml", "redis", "prometheus_client"),
    "build": ("onnx", "onnxruntime", "cv2", "numpy"),
}

#: Exit status of a command whose extra is missing (a usage error, like Click's).
EXIT_MISSING_EXTRA = 2


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extras(*extras: str) -> list[str]:
    """The extras among ``extras`` with a module that cannot be imported."""
    return [e for e in extras if not all(_installed(m) for m in EXTRA_MODULES[e])]


def install_hint(command: str, extras: list[str]) -> str:
    """The message for a command whose ``extras`` are missing: which extra, and the pip line that installs it."""
    names = " and ".join(f"'{e}'" for e in extras)
    return (
        f"`detectflow {command}` needs the {names} extra{'s' if len(extras) > 1 else ''} of detectflow: "
        f"pip install 'detectflow[{','.join(extras)}]'"
    )


def require_extras(command: str, *extras: str) -> None:
    """Exit with status 2 and the pip line to run when one of ``extras`` is not installed."""
    missing = missing_extras(*extras)
    if missing:
        typer.echo(install_hint(command, missing), err=True)
        raise typer.Exit(EXIT_MISSING_EXTRA)
