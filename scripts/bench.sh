#!/usr/bin/env bash
# Floe side by side with tansu 0.6.0 on this machine, in one run.
#
#   scripts/bench.sh                         # the whole run (~15 minutes once built)
#   scripts/bench.sh --restart-log-gb 10     # restart measured on a 10 GB log
#   scripts/bench.sh --no-peer               # Floe alone (no tansu build or run)
#   scripts/bench.sh -- --produce-seconds 20 # anything after -- goes to `floe-bench run`
#
# Builds Floe and the load generator (release), builds tansu once into a cache outside the
# repository (FLOE_BENCH_CACHE, default ~/.cache/floe-bench; about 20 minutes the first time)
# and reuses it after that, then runs `floe-bench run`: machine ceilings, Floe alone, tansu
# alone. Prints the table and writes bench/results/<timestamp>.{json,txt}.
# docs/benchmarks.md explains every number.
set -euo pipefail

cd "$(dirname "$0")/.."

TANSU_VERSION=0.6.0
CACHE="${FLOE_BENCH_CACHE:-$HOME/.cache/floe-bench}"
TANSU_ROOT="$CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

peer=1
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-peer) peer=0 ;;
        --restart-log-gb) extra+=(--restart-log-gb "$2"); shift ;;
        --) shift; extra+=("$@"); break ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$CACHE"

echo "[bench.sh] building floe and floe-bench (release)" >&2
cargo build --release -p floe-broker --bin floe -p floe-bench --bin floe-bench >&2

peer_args=()
if [ "$peer" = 1 ]; then
    if [ ! -x "$TANSU_BIN" ]; then
        # The peer is built from crates.io the way its README says, with its SQLite
        # (libsql) storage engine; --locked pins its dependency versions.
        echo "[bench.sh] building tansu $TANSU_VERSION into $TANSU_ROOT (log: $CACHE/tansu-build.log)" >&2
        nice cargo install tansu --version "$TANSU_VERSION" --locked \
            --features dynostore,libsql --root "$TANSU_ROOT" >"$CACHE/tansu-build.log" 2>&1 || {
            tail -20 "$CACHE/tansu-build.log" >&2
            exit 1
        }
    fi
    peer_args=(--tansu "$TANSU_BIN")
fi

TARGET="${CARGO_TARGET_DIR:-target}"
exec "$TARGET/release/floe-bench" run \
    --floe "$TARGET/release/floe" \
    "${peer_args[@]}" \
    --work-dir "$CACHE/work" \
    --results-dir bench/results \
    "${extra[@]}"
