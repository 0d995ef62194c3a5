#!/usr/bin/env bash
# Refuse early, with a clear message, when the Python interpreter is too old for Neckline.
set -euo pipefail
PYTHON=${1:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: Neckline needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1)." >&2
  echo "       Set PYTHON=/path/to/python3.11 and run make again." >&2
  exit 1
fi
