#!/usr/bin/env bash
# The whole test suite: installs what is needed, builds with warnings as errors, and runs
# every test (unit tests per layer, kv conformance, meta, vfs, and the integration tests
# that mount for real through the kernel). Needs root and /dev/fuse for the mounts.
#   SLUICE_SANITIZE=1 scripts/test.sh   -> the same under ASan+UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
BUILD_DIR=build
[ "${SLUICE_SANITIZE:-0}" = 1 ] && BUILD_DIR=build-asan
# The S3 tests fail instead of skipping when s3rver cannot run.
export SLUICE_REQUIRE_S3=1
# So do the metadata-engine tests when their server (redis-server, ...) cannot run.
export SLUICE_REQUIRE_SERVERS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600 -j1 "$@"
