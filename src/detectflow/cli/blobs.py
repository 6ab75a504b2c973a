"""`detectflow blobs`: sweep expired blobs once (what each API process does every storage_sweep_interval_seconds)."""

from __future__ import annotations

import typer

from detectflow.config import get_settings

app = typer.Typer(no_args_is_help=True)


@app.command()
def sweep() -> None:
    """Delete every blob whose jobs have expired from the configured store; prints how many."""
    from detectflow.blobs import BlobExpiry, open_blob_store
    from detectflow.blobs.expiry import sweep as sweep_due
    from detectflow.jobs.stores.redis import client_options, connect

    s = get_settings()
    password = s.redis_password.get_secret_value() if s.redis_password else None
    client = connect(s.redis_url, password, **client_options(s))
    store = open_blob_store(s, client)
    try:
        deleted = sweep_due(store, BlobExpiry(client, s.redis_prefix))
    finally:
        store.close()
        client.close()
    typer.echo(f"deleted {deleted} expired blobs ({s.storage})")
