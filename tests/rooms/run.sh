#!/usr/bin/env bash
# Runs the rooms client tests (tests/rooms/*.test.mjs) with Node's test runner, against the
# server binary $CAIRN_BIN (default target/debug/cairn, relative to the repository root; build it
# with `cargo build -p cairn`). Installs the pinned client packages from package-lock.json first
# when node_modules is missing or was installed from another lock file. Exits non-zero if a test
# fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/tests/rooms"
cd "$root"

export CAIRN_BIN="${CAIRN_BIN:-target/debug/cairn}"
case "$CAIRN_BIN" in
  /*) bin="$CAIRN_BIN" ;;
  *) bin="$root/$CAIRN_BIN" ;;
esac
if [ ! -x "$bin" ]; then
  echo "tests/rooms/run.sh: no server binary at $bin (run 'cargo build -p cairn' or set CAIRN_BIN)" >&2
  exit 1
fi
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "tests/rooms/run.sh: $tool is not installed" >&2; exit 1; }
done

# node_modules is current when it was installed from this very package-lock.json.
stamp="$here/node_modules/.cairn-package-lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "tests/rooms/run.sh: installing the client packages (npm ci)" >&2
  npm ci --prefix "$here" --prefer-offline --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

node --test "$here/"
