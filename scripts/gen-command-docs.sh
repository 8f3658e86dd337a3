#!/usr/bin/env bash
# Regenerates docs/commands.md from the built binary's --help texts, so the command
# reference is always the help the binary prints. With --check, fails (exit 1) when
# docs/commands.md differs from what would be generated.
#   scripts/gen-command-docs.sh [--check] [SLUICE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
BIN=${1:-build/sluice}
out=$(mktemp)
{
  cat <<'HEAD'
# Command reference

Generated from `sluice --help` and `sluice COMMAND --help` by
`scripts/gen-command-docs.sh`; do not edit by hand.

## URLs

Metadata engines (META_URL):

| URL | engine |
|-----|--------|
| `sqlite3://PATH[?sync=full\|normal&busy_timeout_ms=N]` | SQLite file in WAL mode; `sqlite3:///abs/path.db` or `sqlite3://relative.db` |
| `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?prefix=NAME]` | PostgreSQL (also `postgresql://`); password from `SLUICE_META_PASSWORD` or `PGPASSWORD`; see [metadata-engines.md](metadata-engines.md) |
| `redis://[USER:PASS@]HOST[:PORT][/DB][?prefix=NAME&timeout_ms=N]` | Redis 6+ (append-only file with fsync); see [metadata-engines.md](metadata-engines.md) |
| `etcd://HOST:PORT[,HOST:PORT...][/PREFIX][?prefix=PREFIX]` | an etcd v3 cluster (3.4+); keys under PREFIX; see [metadata-engines.md](metadata-engines.md) |
| `mem://NAME` | in-process memory, for tests only |

Object stores (`--storage`):

| URL | store |
|-----|-------|
| `file://DIR[?fsync=true\|false]` | a local directory; objects are written to a temp file, fsynced and renamed |
| `s3://HOST[:PORT]/BUCKET[/PREFIX][?region=&style=path\|virtual]` | S3 or an S3-compatible store over https; see [storage.md](storage.md) |
| `s3+http://HOST[:PORT]/BUCKET[/PREFIX][?...]` | the same over plain http, for servers on loopback |
| `mem://NAME` | in-process memory, for tests only |

HEAD
  echo '## sluice'
  echo
  echo '```'
  "$BIN" --help
  echo '```'
  for cmd in $("$BIN" --help | awk '/^Subcommands:/{f=1;next} f && !NF {exit} f {print $1}'); do
    echo
    echo "## sluice $cmd"
    echo
    echo '```'
    "$BIN" "$cmd" --help
    echo '```'
  done
} > "$out"
if [ $check = 1 ]; then
  if ! diff -u docs/commands.md "$out" >/dev/null; then
    echo "docs/commands.md is out of date: run scripts/gen-command-docs.sh" >&2
    rm -f "$out"; exit 1
  fi
  rm -f "$out"
else
  mv "$out" docs/commands.md
fi
