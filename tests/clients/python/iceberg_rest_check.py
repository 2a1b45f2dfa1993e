"""Checks of the Iceberg REST catalog Floe serves (`/iceberg` on its HTTP listener): real
engines attach by URL and read exactly what was produced with confluent-kafka, and every
write through the catalog is refused with the specification's 403 error.

Subcommands (all take --bootstrap, --rest-uri, --topic, --count):
  produce   create a json-mode table topic, produce --count records, wait until the table
            holds them (read through the REST catalog).
  pyiceberg RestCatalog: list namespaces and tables (pages too), load the table, read
            exactly the produced rows; errors (unknown table/namespace, bad input) and
            refused writes, through pyiceberg and raw HTTP.
  duckdb    ATTACH the REST endpoint with DuckDB's pip-bundled iceberg extension; count and
            checksums equal what was produced.
  spark     Spark 3.5 with Iceberg's runtime and RESTCatalog: list, count, checksums, and a
            refused CREATE TABLE. Needs --spark-jars.
  s3        the table of an S3 warehouse (moto), read by pyiceberg and DuckDB with only what
            the catalog hands out (--vend: the access keys too); without --vend the keys are
            never served.
Exits non-zero with the first mismatch on stderr.
"""

import argparse
import glob
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tableflow_check import create_topic, fail, json_table_configs, produce, record  # noqa: E402

NAMESPACE = "default"


def expected(n):
    """count, sum(id), sum(amount), count of 'eu' rows of records 0..n-1."""
    return (
        n,
        n * (n - 1) // 2,
        sum(record(i)["amount"] for i in range(n)),
        sum(1 for i in range(n) if record(i)["region"] == "eu"),
    )


def check_sums(engine, got, n):
    cnt, ids, amount, eu = got
    w_cnt, w_ids, w_amount, w_eu = expected(n)
    if (cnt, ids, eu) != (w_cnt, w_ids, w_eu) or abs(amount - w_amount) > 1e-6:
        fail(f"{engine}: count {cnt} sum(id) {ids} sum(amount) {amount} eu {eu}, wanted {expected(n)}")
    print(f"{engine}: {cnt} rows, checksums equal what was produced")


def rest_catalog(args, **extra):
    from pyiceberg.catalog.rest import RestCatalog

    return RestCatalog("floe", uri=args.rest_uri, warehouse="floe", **extra)


def http(args, method, path, body=None, headers=None):
    """(status, parsed JSON body or None) of a raw request to the catalog."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(args.rest_uri + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None), dict(r.headers)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text else None), dict(e.headers)


def expect_error(args, method, path, status, kind, body=None):
    got, model, _ = http(args, method, path, body)
    if got != status:
        fail(f"{method} {path}: status {got}, wanted {status}: {model}")
    if method == "HEAD":
        return model
    err = (model or {}).get("error") or {}
    if err.get("type") != kind or err.get("code") != status or not err.get("message"):
        fail(f"{method} {path}: error model {model}, wanted type {kind} code {status}")
    return err


def wait_rows(args, count, timeout=180):
    """The table once it holds `count` rows, read through the REST catalog."""
    deadline = time.time() + timeout
    seen = -1
    while time.time() < deadline:
        try:
            t = rest_catalog(args, **s3_props(args)).load_table(f"{NAMESPACE}.{args.topic}")
            if t.current_snapshot() is not None:
                seen = t.scan().to_arrow().num_rows
                if seen >= count:
                    return t
        except Exception as e:  # noqa: BLE001 - not created yet
            seen = f"{type(e).__name__}: {e}"
        time.sleep(0.5)
    fail(f"table {args.topic}: {seen} rows after {timeout}s through the REST catalog, wanted {count}")


def s3_props(args):
    """The keys a client of an S3 warehouse needs when the catalog does not vend them."""
    if args.s3_endpoint and not args.vend:
        return {"s3.access-key-id": "test", "s3.secret-access-key": "test"}
    return {}


def cmd_produce(args):
    create_topic(args, 3, json_table_configs(interval_ms=500))
    n = args.count
    produce(args, ((str(i), json.dumps(record(i)), None) for i in range(n)))
    t0 = time.time()
    wait_rows(args, n)
    print(f"materialized {n} rows in {time.time() - t0:.1f}s after the last ack")
    print(f"OK: produced {n}")


def check_rows(engine, table, n):
    arrow = table.scan().to_arrow()
    if arrow.num_rows != n:
        fail(f"{engine}: {arrow.num_rows} rows, wanted {n}")
    rows = arrow.select(["id", "name", "amount", "region", "tags", "loc", "partition", "offset"]).to_pylist()
    by_id = {}
    for r in rows:
        if r["id"] in by_id:
            fail(f"{engine}: id {r['id']} twice")
        by_id[r["id"]] = r
    for i in range(n):
        r = by_id.get(i)
        if r is None:
            fail(f"{engine}: id {i} missing")
        want = record(i)
        got = {k: r[k] for k in want}
        if got != want:
            fail(f"{engine}: id {i}: got {got}, want {want}")
    if len({(r["partition"], r["offset"]) for r in rows}) != n:
        fail(f"{engine}: duplicate (partition, offset)")
    print(f"{engine}: {n} rows equal to what was produced")


def cmd_pyiceberg(args):
    from pyiceberg.exceptions import (
        BadRequestError,
        ForbiddenError,
        NoSuchNamespaceError,
        NoSuchTableError,
    )
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    n = args.count
    cat = rest_catalog(args)
    namespaces = cat.list_namespaces()
    if (NAMESPACE,) not in namespaces:
        fail(f"pyiceberg: namespaces {namespaces}")
    if cat.list_namespaces(NAMESPACE) != []:
        fail(f"pyiceberg: children of {NAMESPACE}: {cat.list_namespaces(NAMESPACE)}")
    tables = cat.list_tables(NAMESPACE)
    if (NAMESPACE, args.topic) not in tables:
        fail(f"pyiceberg: tables {tables}")
    if not cat.namespace_exists(NAMESPACE) or cat.namespace_exists("nope"):
        fail("pyiceberg: namespace_exists")
    if not cat.table_exists(f"{NAMESPACE}.{args.topic}") or cat.table_exists(f"{NAMESPACE}.nope"):
        fail("pyiceberg: table_exists")
    props = cat.load_namespace_properties(NAMESPACE)
    print(f"pyiceberg: namespaces {namespaces}, tables {tables}, namespace properties {props}")
    table = cat.load_table(f"{NAMESPACE}.{args.topic}")
    check_rows("pyiceberg", table, n)
    summary = table.current_snapshot().summary
    if "floe.next-offsets" not in summary.additional_properties:
        fail(f"pyiceberg: snapshot summary without floe.next-offsets: {summary}")

    # Errors.
    for call, exc in [
        (lambda: cat.load_table(f"{NAMESPACE}.no_such_table"), NoSuchTableError),
        (lambda: cat.list_tables("no_such_namespace"), NoSuchNamespaceError),
        (lambda: cat.load_namespace_properties("no_such_namespace"), NoSuchNamespaceError),
    ]:
        try:
            call()
            fail(f"pyiceberg: no {exc.__name__}")
        except exc as e:
            print(f"pyiceberg: {exc.__name__}: {e}")
    err = expect_error(args, "GET", f"/v1/namespaces/{NAMESPACE}/tables/no_such_table", 404, "NoSuchTableException")
    expect_error(args, "GET", "/v1/namespaces/no_such_namespace/tables/t", 404, "NoSuchTableException")
    expect_error(args, "GET", "/v1/namespaces/no_such_namespace", 404, "NoSuchNamespaceException")
    expect_error(args, "GET", "/v1/namespaces/no_such_namespace/tables", 404, "NoSuchNamespaceException")
    expect_error(args, "GET", "/v1/namespaces?parent=no_such_namespace", 404, "NoSuchNamespaceException")
    expect_error(args, "HEAD", f"/v1/namespaces/{NAMESPACE}/tables/no_such_table", 404, None)
    expect_error(args, "GET", f"/v1/namespaces/{NAMESPACE}/tables?pageSize=0", 400, "BadRequestException")
    expect_error(args, "GET", "/v1/namespaces?pageToken=not-a-token", 400, "BadRequestException")
    expect_error(args, "GET", f"/v1/namespaces/{NAMESPACE}/tables/{args.topic}?snapshots=some", 400, "BadRequestException")
    expect_error(args, "GET", "/v1/namespaces/a.b/tables", 400, "BadRequestException")
    expect_error(args, "GET", "/v1/config?warehouse=elsewhere", 400, "BadRequestException")
    expect_error(args, "GET", "/v1/no/such/endpoint", 404, "NotFoundException")
    print(f"raw HTTP: unknown table answers 404 {err['type']}: {err['message']}")

    # Pages: one table per page walks the listing once.
    seen, token = [], None
    for _ in range(100):
        path = f"/v1/namespaces/{NAMESPACE}/tables?pageSize=1" + (f"&pageToken={token}" if token else "")
        status, body, _ = http(args, "GET", path)
        if status != 200 or len(body["identifiers"]) > 1:
            fail(f"page {path}: {status} {body}")
        seen += [i["name"] for i in body["identifiers"]]
        token = body.get("next-page-token")
        if not token:
            break
    if sorted(seen) != sorted(t[1] for t in tables) or len(seen) < 2:
        fail(f"pages listed {seen}, the listing is {tables}")
    print(f"pages of one: {seen}")

    # The load answer: metadata location, metadata, config; an entity tag that a client can
    # revalidate with.
    status, body, headers = http(args, "GET", f"/v1/namespaces/{NAMESPACE}/tables/{args.topic}")
    if status != 200 or not body["metadata-location"].endswith(".metadata.json"):
        fail(f"load: {status} {body and body.get('metadata-location')}")
    if body["metadata"]["current-snapshot-id"] != table.current_snapshot().snapshot_id:
        fail(f"load: current snapshot {body['metadata']['current-snapshot-id']}")
    if body.get("config") != {} or "storage-credentials" in body:
        fail(f"load of a local warehouse: config {body.get('config')}")
    etag = headers.get("ETag") or headers.get("etag")
    status, _, _ = http(args, "GET", f"/v1/namespaces/{NAMESPACE}/tables/{args.topic}", headers={"If-None-Match": etag})
    if status not in (200, 304):
        fail(f"revalidation: {status}")
    _, refs, _ = http(args, "GET", f"/v1/namespaces/{NAMESPACE}/tables/{args.topic}?snapshots=refs")
    if len(refs["metadata"]["snapshots"]) != 1 or len(body["metadata"]["snapshots"]) < 1:
        fail(f"snapshots=refs: {len(refs['metadata']['snapshots'])} snapshots")
    print(f"load: {len(body['metadata']['snapshots'])} snapshots (refs: 1), ETag {etag}, revalidated: {status}")
    _, config, _ = http(args, "GET", "/v1/config?warehouse=floe")
    print(f"config: {config['defaults']}, {len(config['endpoints'])} endpoints")

    # Writes through pyiceberg: refused with the server's 403.
    schema = Schema(NestedField(1, "x", LongType(), required=False))
    writes = [
        ("create_table", lambda: cat.create_table(f"{NAMESPACE}.intruder", schema)),
        ("create_namespace", lambda: cat.create_namespace("intruders")),
        ("drop_table", lambda: cat.drop_table(f"{NAMESPACE}.{args.topic}")),
        ("rename_table", lambda: cat.rename_table(f"{NAMESPACE}.{args.topic}", f"{NAMESPACE}.renamed")),
        ("drop_namespace", lambda: cat.drop_namespace(NAMESPACE)),
        ("update_namespace_properties", lambda: cat.update_namespace_properties(NAMESPACE, updates={"a": "b"})),
        ("schema change", lambda: table.update_schema().add_column("intruder", LongType()).commit()),
        ("property change", lambda: table.transaction().set_properties(owner="me").commit_transaction()),
    ]
    for name, call in writes:
        try:
            call()
            fail(f"pyiceberg {name}: accepted")
        except ForbiddenError as e:
            if "read-only" not in str(e):
                fail(f"pyiceberg {name}: {e}")
            print(f"pyiceberg {name}: ForbiddenError: {str(e)[:90]}...")
        except BadRequestError as e:
            fail(f"pyiceberg {name}: 400 instead of 403: {e}")
    # Raw HTTP writes, each refused with the specification's error model.
    t = f"/v1/namespaces/{NAMESPACE}/tables/{args.topic}"
    commit = {
        "identifier": {"namespace": [NAMESPACE], "name": args.topic},
        "requirements": [],
        "updates": [{"action": "set-properties", "updates": {"owner": "me"}}],
    }
    for method, path, body in [
        ("POST", t, commit),
        ("DELETE", t, None),
        ("POST", f"/v1/namespaces/{NAMESPACE}/tables", {"name": "intruder", "schema": {"type": "struct", "fields": []}}),
        ("POST", "/v1/namespaces", {"namespace": ["intruders"]}),
        ("DELETE", f"/v1/namespaces/{NAMESPACE}", None),
        ("POST", f"/v1/namespaces/{NAMESPACE}/properties", {"updates": {"a": "b"}}),
        ("POST", f"/v1/namespaces/{NAMESPACE}/register", {"name": "x", "metadata-location": "file:///x"}),
        ("POST", "/v1/tables/rename", {"source": {"namespace": [NAMESPACE], "name": args.topic}, "destination": {"namespace": [NAMESPACE], "name": "y"}}),
        ("POST", "/v1/transactions/commit", {"table-changes": [commit]}),
        ("POST", f"/v1/namespaces/{NAMESPACE}/views", {"name": "v"}),
        ("DELETE", f"/v1/namespaces/{NAMESPACE}/views/v", None),
        ("PUT", t, commit),
        ("PATCH", "/v1/no/such/endpoint", {}),
    ]:
        err = expect_error(args, method, path, 403, "ForbiddenException", body)
        if "read-only" not in err["message"]:
            fail(f"{method} {path}: {err}")
    print(f"raw HTTP: 13 writes refused with 403 ForbiddenException: {err['message'][:80]}...")
    # Reads that are not writes: a scan report is accepted; views: none.
    status, _, _ = http(args, "POST", f"{t}/metrics", {"report-type": "scan-report"})
    if status != 204:
        fail(f"metrics report: {status}")
    status, views, _ = http(args, "GET", f"/v1/namespaces/{NAMESPACE}/views")
    if status != 200 or views != {"identifiers": []}:
        fail(f"views: {status} {views}")
    expect_error(args, "GET", f"/v1/namespaces/{NAMESPACE}/views/v", 404, "NoSuchViewException")

    # Nothing changed: the same rows, no new table or namespace.
    cat = rest_catalog(args)
    if cat.list_namespaces() != namespaces or sorted(cat.list_tables(NAMESPACE)) != sorted(tables):
        fail("the catalog changed after refused writes")
    check_rows("pyiceberg after refused writes", cat.load_table(f"{NAMESPACE}.{args.topic}"), n)
    print(f"OK: pyiceberg {n}")


def duckdb_connect(args):
    import duckdb
    import duckdb_extensions

    ext_dir = tempfile.mkdtemp(prefix="duckdb-ext-")
    con = duckdb.connect(config={"extension_directory": ext_dir})
    # iceberg needs avro (and httpfs for REST); imported from the pip bundles, since an
    # autoload would download.
    for ext in ("avro", "httpfs", "iceberg"):
        duckdb_extensions.import_extension(ext, con=con)
    return con


def cmd_duckdb(args):
    n = args.count
    con = duckdb_connect(args)
    con.execute(
        f"ATTACH 'floe' AS floe (TYPE iceberg, ENDPOINT '{args.rest_uri}', AUTHORIZATION_TYPE 'none')"
    )
    tables = con.execute("SELECT database_name, schema_name, table_name FROM duckdb_tables() WHERE database_name = 'floe'").fetchall()
    if ("floe", NAMESPACE, args.topic) not in tables:
        fail(f"duckdb: tables {tables}")
    got = con.execute(
        f"SELECT count(*), sum(id), sum(amount), count(*) FILTER (WHERE region = 'eu') FROM floe.{NAMESPACE}.{args.topic}"
    ).fetchone()
    check_sums("duckdb", got, n)
    distinct = con.execute(f"SELECT count(DISTINCT (partition, \"offset\")) FROM floe.{NAMESPACE}.{args.topic}").fetchone()[0]
    if distinct != n:
        fail(f"duckdb: {distinct} distinct (partition, offset)")
    sample = con.execute(
        f"SELECT id, name, tags FROM floe.{NAMESPACE}.{args.topic} WHERE id IN (0, {n // 2}, {n - 1}) ORDER BY id"
    ).fetchall()
    for i, name, tags in sample:
        if (name, list(tags)) != (record(i)["name"], record(i)["tags"]):
            fail(f"duckdb: id {i}: {(name, tags)}")
    # A write through the attached catalog is refused by the server.
    try:
        con.execute(f"CREATE TABLE floe.{NAMESPACE}.intruder (x BIGINT)")
        fail("duckdb: CREATE TABLE accepted")
    except Exception as e:  # noqa: BLE001 - duckdb raises its own error classes
        if "403" not in str(e) and "read-only" not in str(e) and "Forbidden" not in str(e):
            fail(f"duckdb: CREATE TABLE failed for another reason: {e}")
        print(f"duckdb: CREATE TABLE refused: {str(e)[:120]}")
    print(f"OK: duckdb {n}")


def cmd_spark(args):
    from pyspark.sql import SparkSession

    n = args.count
    jars = sorted(glob.glob(os.path.join(args.spark_jars, "*.jar")))
    if not any("iceberg-spark-runtime" in j for j in jars):
        fail(f"no Iceberg Spark runtime jar in {args.spark_jars} (run scripts/install-test-deps.sh)")
    t0 = time.time()
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("floe-iceberg-rest")
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .config("spark.sql.catalog.floe", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.floe.type", "rest")
        .config("spark.sql.catalog.floe.uri", args.rest_uri)
        .config("spark.sql.catalog.floe.warehouse", "floe")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark: started in {time.time() - t0:.1f}s")
    try:
        namespaces = [r[0] for r in spark.sql("SHOW NAMESPACES IN floe").collect()]
        if NAMESPACE not in namespaces:
            fail(f"spark: namespaces {namespaces}")
        tables = [r.tableName for r in spark.sql(f"SHOW TABLES IN floe.{NAMESPACE}").collect()]
        if args.topic not in tables:
            fail(f"spark: tables {tables}")
        w = record(n - 1)
        got = spark.sql(
            f"SELECT count(*), sum(id), sum(amount), count_if(region = 'eu'), "
            f"count(DISTINCT partition, offset), "
            f"max_by(struct(name, tags, loc.lat), id) "
            f"FROM floe.{NAMESPACE}.{args.topic}"
        ).collect()[0]
        check_sums("spark", tuple(got[:4]), n)
        if got[4] != n:
            fail(f"spark: {got[4]} distinct (partition, offset)")
        last = got[5]
        if (last[0], list(last[1]), last[2]) != (w["name"], w["tags"], w["loc"]["lat"]):
            fail(f"spark: id {n - 1}: {last}")
        print(f"spark: {tables} in {namespaces}")
        try:
            spark.sql(f"CREATE TABLE floe.{NAMESPACE}.intruder (x BIGINT) USING iceberg")
            fail("spark: CREATE TABLE accepted")
        except Exception as e:  # noqa: BLE001 - py4j wraps the Java exception
            text = str(e)
            if "ForbiddenException" not in text or "read-only" not in text:
                fail(f"spark: CREATE TABLE failed for another reason: {text[:2000]}")
            print("spark: CREATE TABLE refused with ForbiddenException")
    finally:
        spark.stop()
    print(f"OK: spark {n}")


def cmd_s3(args):
    """The catalog of an S3 warehouse hands engines its endpoint, region and addressing;
    with --vend also the keys, so pyiceberg and DuckDB read with nothing configured."""
    n = args.count
    status, config, _ = http(args, "GET", "/v1/config")
    d = config["defaults"]
    if status != 200 or d.get("s3.endpoint") != args.s3_endpoint or d.get("s3.path-style-access") != "true":
        fail(f"config of an S3 warehouse: {status} {config}")
    if any("secret" in k or "access-key" in k for k in d) or config["overrides"]:
        fail(f"config hands out keys: {config}")
    _, loaded, _ = http(args, "GET", f"/v1/namespaces/{NAMESPACE}/tables/{args.topic}")
    _, creds, _ = http(args, "GET", f"/v1/namespaces/{NAMESPACE}/tables/{args.topic}/credentials")
    if args.vend:
        if loaded["config"].get("s3.access-key-id") != "test" or len(creds["storage-credentials"]) != 1:
            fail(f"vending on: table config {loaded['config']}, credentials {creds}")
        cat = rest_catalog(args)
    else:
        if loaded["config"] != {} or "storage-credentials" in loaded or creds != {"storage-credentials": []}:
            fail(f"vending off: table config {loaded['config']}, credentials {creds}")
        cat = rest_catalog(args, **s3_props(args))
    table = cat.load_table(f"{NAMESPACE}.{args.topic}")
    if not table.metadata_location.startswith("s3://"):
        fail(f"metadata at {table.metadata_location}")
    check_rows("pyiceberg (s3)", table, n)
    con = duckdb_connect(args)
    if not args.vend:
        endpoint = args.s3_endpoint.split("://", 1)[1]
        con.execute(
            f"CREATE SECRET s3 (TYPE S3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)"
        )
    con.execute(
        f"ATTACH 'floe' AS floe (TYPE iceberg, ENDPOINT '{args.rest_uri}', AUTHORIZATION_TYPE 'none')"
    )
    got = con.execute(
        f"SELECT count(*), sum(id), sum(amount), count(*) FILTER (WHERE region = 'eu') FROM floe.{NAMESPACE}.{args.topic}"
    ).fetchone()
    check_sums("duckdb (s3)", got, n)
    print(f"OK: s3 {n} vend={args.vend}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["produce", "pyiceberg", "duckdb", "spark", "s3"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--rest-uri", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--compression", default="lz4")
    ap.add_argument("--spark-jars")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--vend", action="store_true")
    args = ap.parse_args()
    {
        "produce": cmd_produce,
        "pyiceberg": cmd_pyiceberg,
        "duckdb": cmd_duckdb,
        "spark": cmd_spark,
        "s3": cmd_s3,
    }[args.command](args)


if __name__ == "__main__":
    main()
