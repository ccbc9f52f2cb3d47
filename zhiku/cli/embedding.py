"""``zhiku embed-server``: the standalone embedding server (the seed's m3e container, on port 6008)."""

from __future__ import annotations

import typer


def embed_server(host: str | None = typer.Option(None, help="Address to bind (default 127.0.0.1)."),
                 port: int | None = typer.Option(None, help="Port (default 6008).")) -> None:
    """Serve /v1/embeddings, /v1/rerank and /v1/models (OpenAI-compatible) for the local models."""
    import uvicorn
    from rich.console import Console

    from zhiku.cli.main import _configure_logging, build_settings
    from zhiku.embedding.registry import build_embedders, build_rerankers
    from zhiku.errors import ZhikuError
    from zhiku.web.embed_server import check_embed_settings, create_embed_app

    settings = build_settings(embed_host=host, embed_port=port)
    _configure_logging(settings)
    err = Console(stderr=True, soft_wrap=True)
    try:
        check_embed_settings(settings)
        registry = build_embedders(settings)
        rerankers = build_rerankers(settings)
    except ZhikuError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    for name in registry.names():
        load = getattr(registry.get(name), "load", None)
        if load is not None:
            load()  # pay the load before the first request, not during it
    app_ = create_embed_app(settings, registry, rerankers)
    err.print(f"embedding server on http://{settings.embed_host}:{settings.embed_port}/v1 "
              f"(models: {', '.join(app_.state.service.model_names())}; "
              f"rerank: {', '.join(rerankers) or 'none'})", highlight=False)
    uvicorn.run(app_, host=settings.embed_host, port=settings.embed_port, log_level=settings.log_level.lower())


app = typer.Typer(help="Zhiku's embedding server.", pretty_exceptions_enable=False)
app.command("embed-server")(embed_server)
