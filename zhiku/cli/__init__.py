"""The ``zhiku`` command: typer commands, thin; each calls the same services as the API."""
