#!/usr/bin/env bash
# Installs every Debian package that the build, the tests and the quick start need, and
# s3rver (an S3 server for the tests, pinned) from npm into .tools/. Idempotent: packages
# already present are left alone, and apt is only updated when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libfuse3-dev fuse3
  libsqlite3-dev sqlite3
  libpq-dev postgresql
  libhiredis-dev redis-server
  libzstd-dev liblz4-dev libxxhash-dev
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libcurl4-openssl-dev libssl-dev openssl libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  attr psmisc procps bc
  awscli s3fs rclone python3-numpy curl  # bench/s3_bench.sh, bench/model_bench.sh baselines
  etcd-server etcd-client
)
# Node.js for s3rver. A Node.js from elsewhere (NodeSource bundles npm) is kept as it is.
if ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernel FUSE device must exist for mounts.
if [ ! -e /dev/fuse ]; then
  echo "warning: /dev/fuse is missing; mounts will fail" >&2
fi

# s3rver, the S3 server the object-store tests start on loopback (tests/object/s3_server.h).
S3RVER_VERSION=3.7.1
if [ ! -e .tools/node_modules/.bin/s3rver ]; then
  echo "installing s3rver@$S3RVER_VERSION into .tools/"
  npm install --prefix .tools "s3rver@$S3RVER_VERSION" --no-audit --no-fund --silent
fi
