"""``zhiku embed-server``: the standalone embedding server (the seed's m3e container, on port 6008)."""

from __future__ import annotations

import typer


def embed_server(host: str | None = typer.Option(None, help="Address to bind (default 127.0.0.1)."),
                 port: int | None = typer.Option(None, help="Port (default 6008).")) -> None:
    """Serve /v1/embeddings, /v1/rerank and /v1/models (OpenAI-compatible) for the local models."""
    from zhiku.process.bootstrap import build_settings, configure_logging, run
    from zhiku.process.serve import run_embed_server

    settings = build_settings(embed_host=host, embed_port=port)
    configure_logging(settings)
    run(lambda: run_embed_server(settings, announce=lambda line: typer.echo(line, err=True)), server=True)
