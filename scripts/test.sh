#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit, integration, crash and doc tests.
# This is the README's test command; .ci/run calls it. It installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
bash tests/postgres/ensure.sh
cargo nextest run --workspace --locked --no-fail-fast
cargo test --doc --workspace --locked

# Real clients against the real binary: Cloudflare's Python SDK for the /client/v4 API.
VENV=target/venv-sdk
if [ ! -x "$VENV/bin/pytest" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/cloudflare_sdk/requirements.txt
cargo build -p cairn --locked
CAIRN_BIN=target/debug/cairn "$VENV/bin/pytest" -q -p no:cacheprovider tests/cloudflare_sdk

# Real clients against the real binary's S3 API: boto3 (with requests) and rclone.
VENV_S3=target/venv-s3
if [ ! -x "$VENV_S3/bin/pytest" ]; then
  python3 -m venv "$VENV_S3"
fi
"$VENV_S3/bin/pip" install --quiet --disable-pip-version-check -r tests/s3/requirements.txt
bash tests/s3/install-rclone.sh
CAIRN_BIN=target/debug/cairn "$VENV_S3/bin/pytest" -q -p no:cacheprovider tests/s3

# Continuous backup to an S3 server that is not Cairn (moto in server mode), across a SIGKILL.
VENV_BACKUP=target/venv-backup
if [ ! -x "$VENV_BACKUP/bin/pytest" ]; then
  python3 -m venv "$VENV_BACKUP"
fi
"$VENV_BACKUP/bin/pip" install --quiet --disable-pip-version-check -r tests/backup/requirements.txt
CAIRN_BIN=target/debug/cairn "$VENV_BACKUP/bin/pytest" -q -p no:cacheprovider tests/backup

# Real clients against the real binary's rooms: partysocket, yjs + y-websocket (npm, pinned).
CAIRN_BIN=target/debug/cairn bash tests/rooms/run.sh
