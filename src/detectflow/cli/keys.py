"""`detectflow keys`: create, list and revoke API keys through a running API (an admin key is needed)."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from detectflow.auth.records import Scope
from detectflow.cli.client import auth_headers
from detectflow.config import get_settings

app = typer.Typer(no_args_is_help=True)
console = Console()

ApiUrl = Annotated[str, typer.Option(envvar="DETECTFLOW_API_URL", help="API base URL.")]


def _client(api: str) -> httpx.Client:
    return httpx.Client(base_url=api, timeout=30, headers=auth_headers(get_settings()))


def _check(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 400:
        try:
            err = resp.json()["error"]
            message = f"{err['code']}: {err['message']}"
        except (ValueError, KeyError):
            message = f"HTTP {resp.status_code}: {resp.text[:200]}"
        typer.echo(message, err=True)
        raise typer.Exit(1)
    return resp


@app.command()
def create(
    tenant: Annotated[str, typer.Option(help="Tenant whose jobs the key sees and makes.")],
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    scope: Annotated[list[Scope], typer.Option(help="Scopes (repeat).")] = [Scope.jobs_write, Scope.jobs_read],  # noqa: B006
    rate_limit: Annotated[float | None, typer.Option(help="Submissions per second [default: the server's].")] = None,
    burst: Annotated[int | None, typer.Option(help="Token bucket size [default: the server's].")] = None,
    max_queued_jobs: Annotated[int | None, typer.Option(help="Unfinished jobs of the tenant [default: the server's].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the created key as JSON.")] = False,
    api: ApiUrl = "http://127.0.0.1:8000",
) -> None:
    """Create a key; it is shown once."""
    body = {"tenant": tenant, "name": name, "scopes": [s.value for s in scope], "rate_limit_per_second": rate_limit,
            "burst": burst, "max_queued_jobs": max_queued_jobs}  # fmt: skip
    with _client(api) as client:
        created = _check(client.post("/v1/keys", json=body)).json()
    if as_json:
        typer.echo(json.dumps(created))
        return
    console.print(f"key [bold]{created['id']}[/] for tenant {created['tenant']}: {', '.join(created['scopes'])}")
    console.print(f"[bold]{created['key']}[/]\n(shown once: store it now)")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    api: ApiUrl = "http://127.0.0.1:8000",
) -> None:
    """List keys (never the keys themselves)."""
    with _client(api) as client:
        items = _check(client.get("/v1/keys")).json()["items"]
    if as_json:
        typer.echo(json.dumps(items))
        return
    table = Table("id", "tenant", "name", "scopes", "rate/s", "burst", "max queued", "last used")
    for k in items:
        table.add_row(k["id"], k["tenant"], k["name"], " ".join(k["scopes"]), str(k["rate_limit_per_second"] or "-"),
                      str(k["burst"] or "-"), str(k["max_queued_jobs"] or "-"), k["last_used_at"] or "never")  # fmt: skip
    console.print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    api: ApiUrl = "http://127.0.0.1:8000",
) -> None:
    """Revoke a key: it is refused from the next request on."""
    with _client(api) as client:
        _check(client.delete(f"/v1/keys/{key_id}"))
    console.print(f"revoked {key_id}")
