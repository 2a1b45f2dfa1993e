#!/usr/bin/env bash
# The project's test command: installs the real Kafka clients, checks formatting and lints,
# builds everything and runs the whole test suite (unit, protocol and end-to-end tests).
#
# Works on a fresh Debian machine as root with Rust/cargo, Python 3.11, node 20/npm and
# Java 17 preinstalled. CI runs it through `.ci/run`.
#
# Environment:
#   FLOE_TEST_THREADS  tests run at once (default 2: the machines have 2 cores, and every
#                      end-to-end test runs a broker plus a client)
#   FLOE_SKIP_INSTALL  set to 1 to skip the installs (the clients are already there)
#
# Storage I/O backends: the storage crate's tests run every scenario on both backends
# themselves. The whole suite runs with the broker on io_uring (`FLOE_STORAGE_IO=uring`,
# inherited by every broker the end-to-end tests start), then the end-to-end tests
# (`-p floe-tests`) run again on the std backend, except those whose subject does not
# touch the backend (`STD_SKIP`: 200,000 offset commits through the group coordinator
# and the cleaner of `__consumer_offsets`; the tiered-storage tests, whose
# subject is the object store: storage's own tests run tiering's local I/O on both
# backends, as they do compaction's; the deploy/ tests, whose subject is the manifests, the
# image and its start-up, the same whatever the backend).
set -euo pipefail

STD_SKIP=(consumer_offsets_stay_small_under_many_commits gigabyte_tiered_to_moto
    gigabyte_tiered_to_s3s_fs outage_and_kill9_lose_nothing
    kustomize_base_and_overlays_render_and_validate
    containerfile_builds_floe_and_runs_it_as_documented
    image_entrypoint_and_config_serve_outside_a_container
    image_builds_and_starts_in_a_container)
# The admin CLI's tests: their subject is the Kafka protocol the CLI speaks, whatever the
# broker's storage backend.
STD_SKIP+=(cli_bad_arguments_exit_2 cli_topics_produce_consume_round_trip
    cli_group_lag_and_reset_offsets cli_consume_skips_markers_and_aborted_records)
# Security: TLS, SASL, ACLs and quotas sit above the storage engine.
STD_SKIP+=(clients_over_tls_and_sasl bad_input_on_secured_listeners
    quotas_throttle_a_producer_and_no_one_else sessions_expire_and_reauthenticate
    oauthbearer_tokens_checked_against_a_jwks certificates_reload_without_restart
    acl_matrix_with_real_clients_survives_restart cli_over_tls_and_sasl
    cli_security_failures cli_reauthenticates)
# Tables: the Iceberg REST catalog, table maintenance and catalog/warehouse outages sit
# above the storage engine (the retention hold's storage side has unit tests on both
# backends).
STD_SKIP+=(pyiceberg_and_duckdb_read_through_rest_and_writes_are_refused
    spark_reads_through_rest_catalog s3_warehouse_settings_and_vended_credentials
    catalog_off_answers_with_an_error_model many_commits_stay_bounded_and_read_exactly_once
    kill9_inside_maintenance_keeps_rows_exactly_once
    warehouse_outage_under_load_loses_and_doubles_nothing
    retention_waits_for_the_table_until_the_hold_ends)
# The schema registry: its REST API and serializers sit above the storage engine (its
# records go through the same internal-topic path as the coordinators', tested on both).
STD_SKIP+=(serializers_register_produce_consume_and_everything_survives_a_restart
    schema_validation_refuses_records_of_other_schemas
    avro_protobuf_and_json_schema_tables_are_typed_evolve_and_keep_bad_records)
STD_FILTER="not ($(printf 'test(=%s) | ' "${STD_SKIP[@]}" | sed 's/ | $//'))"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/install-test-deps.sh
source "$ROOT/scripts/install-test-deps.sh"
if [ "${FLOE_SKIP_INSTALL:-0}" != "1" ]; then
    install_test_deps
else
    export FLOE_PYTHON="${FLOE_PYTHON:-$ROOT/.venv/bin/python}"
    export FLOE_JAVA_LIBS="${FLOE_JAVA_LIBS:-$ROOT/.cache/java-libs}"
    export FLOE_S3S_FS="${FLOE_S3S_FS:-$ROOT/.cache/s3s-fs/bin/s3s-fs}"
    export FLOE_SPARK_JARS="${FLOE_SPARK_JARS:-$ROOT/.cache/spark-iceberg}"
fi

THREADS="${FLOE_TEST_THREADS:-2}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check
# rustfmt does not follow `mod` items written inside a macro: the handler modules are
# declared by the `handlers!` table, so they are checked by name.
rustfmt --edition 2024 --check broker/src/handlers/*.rs

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build"
cargo build --workspace --all-targets

# The end-to-end tests run this binary rather than building it themselves.
export FLOE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/floe"

step "tests (storage.io = uring)"
if cargo nextest --version >/dev/null 2>&1; then
    # nextest runs each test in its own process but not doctests: run those first so the
    # nextest summary is the last thing printed.
    cargo test --workspace --doc
    FLOE_STORAGE_IO=uring cargo nextest run --workspace \
        --config-file "$ROOT/scripts/nextest.toml" --test-threads "$THREADS"
    step "end-to-end tests (storage.io = std)"
    FLOE_STORAGE_IO=std cargo nextest run -p floe-tests \
        --config-file "$ROOT/scripts/nextest.toml" --test-threads "$THREADS" \
        -E "$STD_FILTER"
else
    FLOE_STORAGE_IO=uring cargo test --workspace --no-fail-fast -- --test-threads "$THREADS"
    step "end-to-end tests (storage.io = std)"
    FLOE_STORAGE_IO=std cargo test -p floe-tests --no-fail-fast -- --test-threads "$THREADS" \
        $(printf -- '--skip %s ' "${STD_SKIP[@]}")
fi
