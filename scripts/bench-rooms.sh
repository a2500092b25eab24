#!/usr/bin/env bash
# `cairn bench rooms`: Cairn's rooms (the built-in `chat` party of a `cairn serve` child
# process) against a PartyKit-style server on Miniflare/workerd (`partyserver` with
# hibernation), in one run. Installs what the anchor needs from npm into target/bench-node if
# it is missing (no global install): Miniflare at the version `cairn bench kv` uses,
# partyserver (and its nanoid), and esbuild, which bundles the anchor's Worker for Miniflare.
# Arguments are passed on to `cairn bench rooms`.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIFLARE_VERSION=4.20260426.0
PARTYSERVER_VERSION=0.5.10
ESBUILD_VERSION=0.28.2
PREFIX=target/bench-node

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update
  apt-get install -y nodejs npm
fi
installed() {
  node -e 'const p = require(process.argv[1]); process.exit(p.version === process.argv[2] ? 0 : 1)' \
    "$PWD/$PREFIX/node_modules/$1/package.json" "$2" 2>/dev/null
}
if ! installed miniflare "$MINIFLARE_VERSION" || ! installed partyserver "$PARTYSERVER_VERSION" \
  || ! installed esbuild "$ESBUILD_VERSION"; then
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-fund --no-audit --save-exact \
    "miniflare@$MINIFLARE_VERSION" "partyserver@$PARTYSERVER_VERSION" "esbuild@$ESBUILD_VERSION"
fi

# 10,000 client sockets in the benchmark process, 10,000 in the server's: each needs a file
# descriptor. Raise the soft limit to the hard one (the child processes inherit it).
ulimit -n "$(ulimit -Hn)"

cargo run --release --locked -p cairn -- bench rooms \
  --node "$(command -v node)" \
  --npm-prefix "$PREFIX" \
  "$@"
