#!/usr/bin/env bash
# Floe side by side with tansu 0.6.0 on this machine, in one run.
#
#   scripts/bench.sh                         # the whole run (~15 minutes once built)
#   scripts/bench.sh --restart-log-gb 10     # restart measured on a 10 GB log
#   scripts/bench.sh --no-peer               # Floe alone (no tansu build or run)
#   scripts/bench.sh -- --produce-seconds 20 # anything after -- goes to `floe-bench run`
#   scripts/bench.sh --no-peer -- --tiered-only   # only the tiered-storage scenario
#
# Builds Floe and the load generator (release), builds tansu once into a cache outside the
# repository (FLOE_BENCH_CACHE, default ~/.cache/floe-bench; about 20 minutes the first time)
# and reuses it after that, then runs `floe-bench run`: machine ceilings, Floe alone (and
# Floe on the std backend for the small-request runs, the compaction and tiered-storage
# scenarios; the latter against an s3s-fs server on loopback), tansu alone. Prints the table, writes
# bench/results/<timestamp>.{json,txt} and draws each small-request scenario's latency CDF
# as bench/results/<timestamp>-small-acks<1|all>-p<N>.png (matplotlib, in its own venv).
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
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
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

# s3s-fs is the object store of the tiered-storage scenario: the same build the tests use
# (scripts/install-test-deps.sh puts it in .cache/s3s-fs).
# shellcheck source=scripts/install-test-deps.sh
source scripts/install-test-deps.sh
install_s3s_fs >&2

# matplotlib draws the latency CDFs; it lives in a virtualenv beside the tansu build.
PLOT_VENV="$CACHE/plot-venv"
if [ ! -x "$PLOT_VENV/bin/python" ] || ! "$PLOT_VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "[bench.sh] installing matplotlib into $PLOT_VENV" >&2
    python3 -m venv "$PLOT_VENV"
    "$PLOT_VENV/bin/pip" install --quiet 'matplotlib>=3.8,<4' >&2
fi

TARGET="${CARGO_TARGET_DIR:-target}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$TARGET/release/floe-bench" run \
    --floe "$TARGET/release/floe" \
    "${peer_args[@]}" \
    --s3s-fs "$FLOE_S3S_FS" \
    --work-dir "$CACHE/work" \
    --results-dir bench/results \
    "${extra[@]}" | tee "$out"
report="$(sed -n 's/^report: //p' "$out" | tail -1)"
if [ -n "$report" ]; then
    "$PLOT_VENV/bin/python" bench/plot_cdf.py "$report"
fi
