"""`detectflow keys`: create, list and revoke API keys through a running API (an admin key is needed)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from detectflow.auth.records import Scope
from detectflow.cli.client import DEFAULT_API_URL, ApiUrl, api_errors, open_client

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command()
def create(
    tenant: Annotated[str, typer.Option(help="Tenant whose jobs the key sees and makes.")],
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    scope: Annotated[list[Scope], typer.Option(help="Scopes (repeat).")] = [Scope.jobs_write, Scope.jobs_read],  # noqa: B006
    rate_limit: Annotated[float | None, typer.Option(help="Submissions per second [default: the server's].")] = None,
    burst: Annotated[int | None, typer.Option(help="Token bucket size [default: the server's].")] = None,
    max_queued_jobs: Annotated[int | None, typer.Option(help="Unfinished jobs of the tenant [default: the server's].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the created key as JSON.")] = False,
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Create a key; it is shown once."""
    with api_errors(), open_client(api) as client:
        created = client.create_key(tenant, name, list(scope), rate_limit_per_second=rate_limit, burst=burst,
                                    max_queued_jobs=max_queued_jobs)  # fmt: skip
    if as_json:
        typer.echo(created.model_dump_json())
        return
    console.print(f"key [bold]{created.id}[/] for tenant {created.tenant}: {', '.join(created.scopes)}")
    console.print(f"[bold]{created.key}[/]\n(shown once: store it now)")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """List keys (never the keys themselves)."""
    with api_errors(), open_client(api) as client:
        items = client.list_keys()
    if as_json:
        typer.echo(json.dumps([k.model_dump(mode="json") for k in items]))
        return
    table = Table("id", "tenant", "name", "scopes", "rate/s", "burst", "max queued", "last used")
    for k in items:
        table.add_row(k.id, k.tenant, k.name, " ".join(k.scopes), str(k.rate_limit_per_second or "-"),
                      str(k.burst or "-"), str(k.max_queued_jobs or "-"),
                      k.last_used_at.isoformat() if k.last_used_at else "never")  # fmt: skip
    console.print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    api: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Revoke a key: it is refused from the next request on."""
    with api_errors(), open_client(api) as client:
        client.revoke_key(key_id)
    console.print(f"revoked {key_id}")
