#!/usr/bin/env bash
# Install the Debian packages Neckline needs, only if something is missing.
# Idempotent: when everything is present it does nothing and needs no root.
set -euo pipefail

PYTHON=${PYTHON:-python3}
# command -> Debian package that provides it
declare -A PROVIDES=(
  [influxd]=influxdb
  [dbus-daemon]=dbus
)

need=()
for cmd in "${!PROVIDES[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${PROVIDES[$cmd]}")
done
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  need+=(python3 python3-venv)
elif ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=(python3-venv)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "Neckline needs these Debian packages: ${need[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get is not available here. Install the equivalent of: ${need[*]}" >&2
  echo "       with your system's package manager, then run make again." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo)
else
  echo "error: installing packages needs root, and sudo is not available without a password." >&2
  echo "       Run:  sudo apt-get install -y ${need[*]}   then run make again." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
