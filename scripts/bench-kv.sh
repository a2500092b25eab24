#!/usr/bin/env bash
# `cairn bench kv`: Cairn's Cloudflare KV and D1 API against Redis and Miniflare, in one run.
# Installs what the anchors need if it is missing: Redis from Debian's packages (the benchmark
# runs its own redis-server processes; none is started as a service) and Miniflare from npm
# into target/bench-node (no global install). Arguments are passed on to `cairn bench kv`.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIFLARE_VERSION=4.20260426.0
PREFIX=target/bench-node

if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update
  apt-get install -y redis-server
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update
  apt-get install -y nodejs npm
fi
if [ ! -f "$PREFIX/node_modules/miniflare/package.json" ]; then
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-fund --no-audit "miniflare@$MINIFLARE_VERSION"
fi

cargo run --release --locked -p cairn -- bench kv \
  --redis-server "$(command -v redis-server)" \
  --node "$(command -v node)" \
  --miniflare-prefix "$PREFIX" \
  "$@"
