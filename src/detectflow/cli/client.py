"""What CLI commands that call a running API share: the --api option, the client, and how errors are printed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from detectflow.client import ApiError, CircuitOpenError, Client, TransportFailed
from detectflow.client.credentials import DEFAULT_API_URL

__all__ = ["ApiUrl", "DEFAULT_API_URL", "open_client", "api_errors"]

ApiUrl = Annotated[str, typer.Option(envvar="DETECTFLOW_API_URL", help="API base URL.")]


def open_client(api: str) -> Client:
    """A `Client` of ``api`` sending DETECTFLOW_API_KEY, else the admin key `detectflow up` wrote."""
    return Client(api)


@contextmanager
def api_errors() -> Iterator[None]:
    """Print an API or transport error on stderr as one line and exit 1, instead of a traceback."""
    try:
        yield
    except ApiError as exc:
        typer.echo(f"{exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except (TransportFailed, CircuitOpenError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
