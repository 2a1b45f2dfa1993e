"""Typed tables from the schema registry (`table.mode=schema`): records produced with
confluent-kafka's Avro, Protobuf and JSON Schema serializers against Floe's registry are
read back from the Iceberg table by pyiceberg and DuckDB as typed columns equal to what was
produced; a compatible new version that adds a field mid-stream adds the column (old rows
null, new rows the value) without a restart; records with an unknown schema id, a payload
that does not decode or no wire-format header land in the `_dlq` table with the error, and
the table goes on.

Usage: schema_table_check.py {avro,protobuf,json,bare} --bootstrap B --registry URL --data-dir D
(`bare`: payloads without the wire-format header, `table.schema.wire.format=false`.)
Exits non-zero with the first mismatch on stderr.
"""

import argparse
import datetime
import decimal
import functools
import os
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tableflow_check import create_topic, duckdb_connect, fail, load  # noqa: E402

UTC = datetime.timezone.utc
BASE_TS = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

AVRO_V1 = {
    "type": "record", "name": "Order", "namespace": "floe.tables",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                    "precision": 10, "scale": 2}},
        {"name": "created", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "ship", "type": {"type": "record", "name": "Address", "fields": [
            {"name": "city", "type": "string"}, {"name": "zip", "type": "int"}]}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


def avro_v2():
    v2 = dict(AVRO_V1)
    v2["fields"] = AVRO_V1["fields"] + [{"name": "channel", "type": ["null", "string"], "default": None}]
    return v2


def avro_record(i, v2=False):
    r = {
        "id": i,
        "customer": f"c{i % 50}",
        "amount": decimal.Decimal(i * 125) / 100,
        "created": BASE_TS + datetime.timedelta(seconds=i),
        "tags": [f"t{j}" for j in range(i % 3)],
        "attrs": {f"k{j}": i + j for j in range(i % 2 + 1)},
        "ship": {"city": ["Oslo", "Lima", "Pune"][i % 3], "zip": 1000 + i % 9000},
        "note": None if i % 2 else f"n{i}",
    }
    if v2:
        r["channel"] = ["web", "app"][i % 2]
    return r


# ---- Protobuf message classes from descriptors (no protoc on the machine) ----

F = descriptor_pb2.FieldDescriptorProto


@functools.lru_cache(maxsize=None)
def proto_class(version):
    f = descriptor_pb2.FileDescriptorProto(
        name=f"floe_tables/order_v{version}.proto", package="floe.tables", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    m = f.message_type.add(name="Order")
    m.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="customer", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="amount", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    m.field.add(name="created", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".google.protobuf.Timestamp")
    m.field.add(name="tags", number=5, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    ship = m.nested_type.add(name="Address")
    ship.field.add(name="city", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    ship.field.add(name="zip", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="ship", number=6, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".floe.tables.Order.Address")
    entry = m.nested_type.add(name="AttrsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="attrs", number=7, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                type_name=".floe.tables.Order.AttrsEntry")
    if version == 2:
        m.field.add(name="channel", number=8, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("floe.tables.Order"))


def proto_record(i, v2=False):
    return {
        "id": i,
        "customer": f"c{i % 50}",
        "amount": i * 1.25,
        "created": BASE_TS + datetime.timedelta(seconds=i),
        "tags": [f"t{j}" for j in range(i % 3)],
        "ship": {"city": ["Oslo", "Lima", "Pune"][i % 3], "zip": 1000 + i % 9000},
        "attrs": {f"k{j}": i + j for j in range(i % 2 + 1)},
        **({"channel": ["web", "app"][i % 2]} if v2 else {}),
    }


def to_proto(values, version):
    msg = proto_class(version)()
    msg.id = values["id"]
    msg.customer = values["customer"]
    msg.amount = values["amount"]
    msg.created.FromDatetime(values["created"])
    msg.tags.extend(values["tags"])
    msg.ship.city = values["ship"]["city"]
    msg.ship.zip = values["ship"]["zip"]
    for k, v in values["attrs"].items():
        msg.attrs[k] = v
    if version == 2:
        msg.channel = values["channel"]
    return msg


JSON_V1 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer"},
        "customer": {"type": "string"},
        "amount": {"type": "number"},
        "created": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "ship": {"type": "object", "additionalProperties": False, "properties": {
            "city": {"type": "string"}, "zip": {"type": "integer"}}},
    },
    "required": ["id", "customer"],
}


def json_v2():
    v2 = dict(JSON_V1)
    v2["properties"] = dict(JSON_V1["properties"], channel={"type": "string"})
    return v2


def json_record(i, v2=False):
    r = {
        "id": i,
        "customer": f"c{i % 50}",
        "amount": i * 1.25,
        "created": (BASE_TS + datetime.timedelta(seconds=i)).isoformat(),
        "tags": [f"t{j}" for j in range(i % 3)],
        "ship": {"city": ["Oslo", "Lima", "Pune"][i % 3], "zip": 1000 + i % 9000},
    }
    if v2:
        r["channel"] = ["web", "app"][i % 2]
    return r


def serializer(fmt, client, v2):
    import json
    if fmt == "avro":
        return AvroSerializer(client, json.dumps(avro_v2() if v2 else AVRO_V1))
    if fmt == "json":
        return JSONSerializer(json.dumps(json_v2() if v2 else JSON_V1), client)
    return ProtobufSerializer(proto_class(2 if v2 else 1), client)


def values_of(fmt, i, v2):
    return {"avro": avro_record, "protobuf": proto_record, "json": json_record}[fmt](i, v2)


def produce(args, fmt, client, ids, v2):
    ser = serializer(fmt, client, v2)
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for i in ids:
        values = values_of(fmt, i, v2)
        obj = to_proto(values, 2 if v2 else 1) if fmt == "protobuf" else values
        data = ser(obj, SerializationContext(args.topic, MessageField.VALUE))
        p.produce(args.topic, key=str(i).encode(), value=data,
                  on_delivery=lambda err, _m: err and errors.append(err))
        p.poll(0)
    p.flush(60)
    if errors:
        fail(f"delivery errors: {errors[:3]}")


def produce_raw(args, values):
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    for v in values:
        p.produce(args.topic, value=v)
    p.flush(30)


def wait_table(args, name, count, timeout=180):
    deadline = time.time() + timeout
    seen = -1
    while time.time() < deadline:
        t = load(args, name)
        if t is not None and t.current_snapshot() is not None:
            seen = t.scan().to_arrow().num_rows
            if seen >= count:
                if seen > count:
                    fail(f"table {name}: {seen} rows, more than the {count} produced")
                return t
        time.sleep(0.5)
    fail(f"table {name}: {seen} rows after {timeout}s, wanted {count}")


def normalize(fmt, row, v2_ids):
    """A table row as the produced values look (Iceberg/Arrow types to Python's)."""
    out = dict(row)
    if "attrs" in out and out["attrs"] is not None:
        out["attrs"] = dict(out["attrs"])
    if fmt == "json":
        out["created"] = out["created"].isoformat()
    return out


def check(args, fmt, n1, n2):
    """Table rows equal the produced values: ids < n1 were written with v1, the rest with v2."""
    total = n1 + n2
    table = wait_table(args, args.topic, total)
    names = [f.name for f in table.schema().fields]
    if "channel" not in names or names[-1] != "_kafka":
        fail(f"columns after evolution: {names}")
    rows = table.scan().to_arrow().to_pylist()
    by_id = {}
    for r in rows:
        if r["id"] in by_id:
            fail(f"id {r['id']} twice")
        by_id[r["id"]] = r
        k = r["_kafka"]
        if k["key"] != str(r["id"]).encode():
            fail(f"id {r['id']}: _kafka.key {k['key']!r}")
    for i in range(total):
        r = by_id.get(i)
        if r is None:
            fail(f"id {i} missing")
        v2 = i >= n1
        want = values_of(fmt, i, v2)
        got = normalize(fmt, {k: r[k] for k in want}, None)
        if fmt == "json":
            want = dict(want)
        if got != want:
            fail(f"{fmt} id {i}: got {got}, want {want}")
        if not v2 and r["channel"] is not None:
            fail(f"id {i} (v1) has channel {r['channel']!r}, want null")
    print(f"pyiceberg: {total} typed rows equal to what was produced; v1 rows have null channel")

    con = duckdb_connect(args)
    loc = table.metadata_location
    cnt, distinct, cities, tags, with_channel = con.execute(
        f"SELECT count(*), count(DISTINCT id), count(DISTINCT ship.city), sum(len(tags)), "
        f"count(channel) FROM iceberg_scan('{loc}')"
    ).fetchone()
    want_tags = sum(len(values_of(fmt, i, False)["tags"]) for i in range(total))
    if (cnt, distinct, cities, tags, with_channel) != (total, total, 3, want_tags, n2):
        fail(f"duckdb: {(cnt, distinct, cities, tags, with_channel)}")
    first = con.execute(
        f"SELECT amount, epoch_us(created), ship.zip FROM iceberg_scan('{loc}') WHERE id = 7"
    ).fetchone()
    w = values_of(fmt, 7, False)
    amount = decimal.Decimal(str(first[0])) if fmt == "avro" else first[0]
    if amount != w["amount"] or first[2] != w["ship"]["zip"]:
        fail(f"duckdb: id 7: {first}")
    want_us = int((BASE_TS + datetime.timedelta(seconds=7)).timestamp() * 1_000_000)
    if first[1] != want_us:
        fail(f"duckdb: id 7 created {first[1]!r}")
    print(f"duckdb: {cnt} rows, typed columns match")


def dead_letters(args, client, fmt, next_id):
    """Three bad records, then good ones: the bad ones go to the _dlq table with their
    errors and the table goes on."""
    known = client.get_latest_version(f"{args.topic}-value").schema_id
    produce_raw(args, [
        b"\x00" + (424242).to_bytes(4, "big") + b"\x02",        # unknown schema id
        b"\x00" + known.to_bytes(4, "big") + b"\xff\xff\xff",    # does not decode
        b'{"id": 1}',                                            # no wire-format header
    ])
    produce(args, fmt, client, range(next_id, next_id + 5), True)
    dlq = wait_table(args, f"{args.topic}_dlq", 3)
    errors = sorted(r["error"] for r in dlq.scan().to_arrow().to_pylist())
    wanted = ["424242", "does not decode", "wire format"]
    for w in wanted:
        if not any(w in e for e in errors):
            fail(f"no dead letter mentions {w!r}: {errors}")
    print(f"dlq: 3 records with their errors: {errors}")
    return next_id + 5


def bare(args, client):
    """table.schema.wire.format=false: bare Avro payloads (no magic byte, no id) decoded with
    the latest version of table.schema.subject."""
    import io
    import json

    import fastavro

    from confluent_kafka.schema_registry import Schema

    subject = f"{args.topic}-bare"
    client.register_schema(subject, Schema(json.dumps(AVRO_V1), "AVRO"))
    parsed = fastavro.parse_schema(AVRO_V1)
    values = []
    for i in range(args.count):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, avro_record(i))
        values.append(buf.getvalue())
    create_topic(args, 1, {
        "table.enable": "true",
        "table.mode": "schema",
        "table.schema.subject": subject,
        "table.schema.wire.format": "false",
        "table.commit.interval.ms": "300",
    })
    produce_raw(args, values)
    table = wait_table(args, args.topic, args.count)
    rows = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    for i, r in enumerate(rows):
        want = avro_record(i)
        got = normalize("avro", {k: r[k] for k in want}, None)
        if got != want:
            fail(f"bare id {i}: got {got}, want {want}")
    print(f"OK: {args.count} bare Avro payloads decoded with the subject's latest schema")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("format", choices=["avro", "protobuf", "json", "bare"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--topic")
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--s3-endpoint", default=None)
    args = p.parse_args()
    fmt = args.format
    args.topic = args.topic or f"typed_{fmt}"
    client = SchemaRegistryClient({"url": args.registry})
    if fmt == "bare":
        bare(args, client)
        return
    # The table is created from the subject's latest schema: register v1 first.
    serializer(fmt, client, False)(
        to_proto(values_of(fmt, 0, False), 1) if fmt == "protobuf" else values_of(fmt, 0, False),
        SerializationContext(args.topic, MessageField.VALUE))
    create_topic(args, 2, {
        "table.enable": "true",
        "table.mode": "schema",
        "table.commit.interval.ms": "300",
    })
    n1 = args.count
    produce(args, fmt, client, range(n1), False)
    wait_table(args, args.topic, n1)
    # Mid-stream: version 2 adds `channel`.
    n2 = args.count // 2
    produce(args, fmt, client, range(n1, n1 + n2), True)
    check(args, fmt, n1, n2)
    end = dead_letters(args, client, fmt, n1 + n2)
    wait_table(args, args.topic, end)
    print(f"OK: {fmt} table typed, evolved and fed {end} rows; bad records in the dlq")


if __name__ == "__main__":
    main()
