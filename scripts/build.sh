#!/usr/bin/env bash
# Configures and builds Sluice into build/ (or $BUILD_DIR). Extra arguments go to cmake.
#   SLUICE_SANITIZE=1 scripts/build.sh   -> ASan+UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SLUICE_SANITIZE:-0}" = 1 ]; then
  BUILD_DIR=${BUILD_DIR:-build-asan}
  set -- -DSLUICE_SANITIZE=ON "$@"
else
  BUILD_DIR=${BUILD_DIR:-build}
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON "$@" >/dev/null
ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
