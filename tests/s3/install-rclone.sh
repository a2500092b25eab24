#!/usr/bin/env bash
# Installs rclone (Debian package) for tests/s3/test_rclone.py, unless it is already on PATH.
# Needs root (CI and the development machines run as root).
set -euo pipefail
if command -v rclone >/dev/null 2>&1; then
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rclone
command -v rclone >/dev/null
