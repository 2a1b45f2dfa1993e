"""Checks of Floe's built-in schema registry with confluent-kafka's own registry client and
serializers, unmodified: `SchemaRegistryClient` against the broker's HTTP listener,
`AvroSerializer`, `ProtobufSerializer` and `JSONSerializer` registering their schemas on
first use (TopicNameStrategy: subject `<topic>-value`), and the matching deserializers
fetching them back by id.

Subcommands (all take --bootstrap, --registry):
  produce   --format F --topic T --count N: serialize and produce N records, each with the
            values of `record(F, i)`; the subject `T-value` then exists.
  consume   --format F --topic T --count N: consume from offset 0 and deserialize; every
            record equals `record(F, i)` in order.
  compat    incompatible schemas of each type are refused with error code 409, invalid ones
            with 42201; test_compatibility answers; levels per subject; unknown ids,
            subjects and versions answer 40403/40401/40402; soft and permanent deletes with
            40404/40405/40406/40407; a referenced schema cannot be deleted (42206).
  validate  --topic T: a topic with confluent.value.schema.validation=true accepts values
            naming a schema of T-value and refuses others with INVALID_RECORD.
Exits non-zero with the first mismatch on stderr.
"""

import argparse
import functools
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import timestamp_pb2

AVRO_SCHEMA = """
{
  "type": "record", "name": "Order", "namespace": "floe.test",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "customer", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "ship", "type": {"type": "record", "name": "Address",
      "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]}},
    {"name": "note", "type": ["null", "string"], "default": null}
  ]
}
"""

JSON_SCHEMA = """
{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "Order",
  "type": "object",
  "properties": {
    "id": {"type": "integer"},
    "customer": {"type": "string"},
    "amount": {"type": "number"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "ship": {"type": "object", "properties": {"city": {"type": "string"}}}
  },
  "required": ["id", "customer"]
}
"""


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


# ---- Protobuf: message classes built from descriptors at run time (no protoc here) ----

F = descriptor_pb2.FieldDescriptorProto


def proto_files():
    """money.proto (a dependency, registered as a reference) and order.proto, which imports
    it and Google's Timestamp (a well-known type the serializer does not register)."""
    money = descriptor_pb2.FileDescriptorProto(
        name="floe_test/money.proto", package="floe.money", syntax="proto3"
    )
    m = money.message_type.add(name="Money")
    m.field.add(name="currency", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="cents", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)

    order = descriptor_pb2.FileDescriptorProto(
        name="floe_test/order.proto",
        package="floe.test",
        syntax="proto3",
        dependency=["floe_test/money.proto", "google/protobuf/timestamp.proto"],
    )
    o = order.message_type.add(name="Order")
    o.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    o.field.add(name="customer", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    o.field.add(name="amount", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    o.field.add(name="tags", number=4, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    o.field.add(
        name="total", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
        type_name=".floe.money.Money",
    )
    o.field.add(
        name="created", number=6, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
        type_name=".google.protobuf.Timestamp",
    )
    item = o.nested_type.add(name="Item")
    item.field.add(name="sku", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    item.field.add(name="qty", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    o.field.add(
        name="items", number=7, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
        type_name=".floe.test.Order.Item",
    )
    return money, order


@functools.lru_cache(maxsize=None)
def order_class():
    money, order = proto_files()
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(money)
    pool.Add(order)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("floe.test.Order"))


def record(fmt, i):
    """The values of record i, as a plain dict."""
    base = {
        "id": i,
        "customer": f"customer-{i % 97}",
        "amount": i * 0.25,
        "tags": [f"t{j}" for j in range(i % 4)],
    }
    if fmt == "avro":
        base["attrs"] = {f"k{j}": i * j for j in range(i % 3)}
        base["ship"] = {"city": ["Oslo", "Lima", "Pune"][i % 3], "zip": f"{i:05d}"}
        base["note"] = None if i % 2 else f"note {i}"
    elif fmt == "json":
        base["ship"] = {"city": ["Oslo", "Lima", "Pune"][i % 3]}
    elif fmt == "protobuf":
        base["total"] = {"currency": "EUR", "cents": i * 25}
        base["created"] = 1_700_000_000 + i
        base["items"] = [{"sku": f"sku-{i}-{j}", "qty": j + 1} for j in range(i % 3)]
    return base


def to_proto(cls, values):
    msg = cls()
    msg.id = values["id"]
    msg.customer = values["customer"]
    msg.amount = values["amount"]
    msg.tags.extend(values["tags"])
    msg.total.currency = values["total"]["currency"]
    msg.total.cents = values["total"]["cents"]
    msg.created.seconds = values["created"]
    for item in values["items"]:
        it = msg.items.add()
        it.sku = item["sku"]
        it.qty = item["qty"]
    return msg


def from_proto(msg):
    return {
        "id": msg.id,
        "customer": msg.customer,
        "amount": msg.amount,
        "tags": list(msg.tags),
        "total": {"currency": msg.total.currency, "cents": msg.total.cents},
        "created": msg.created.seconds,
        "items": [{"sku": it.sku, "qty": it.qty} for it in msg.items],
    }


def serializer(fmt, client):
    if fmt == "avro":
        return AvroSerializer(client, AVRO_SCHEMA)
    if fmt == "json":
        return JSONSerializer(JSON_SCHEMA, client)
    return ProtobufSerializer(order_class(), client)


def deserializer(fmt, client):
    if fmt == "avro":
        return AvroDeserializer(client)
    if fmt == "json":
        return JSONDeserializer(None, schema_registry_client=client)
    return ProtobufDeserializer(order_class(), {}, client)


def produce(args, client):
    ser = serializer(args.format, client)
    cls = order_class() if args.format == "protobuf" else None
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for i in range(args.count):
        values = record(args.format, i)
        obj = to_proto(cls, values) if cls else values
        data = ser(obj, SerializationContext(args.topic, MessageField.VALUE))
        producer.produce(args.topic, value=data, key=str(i).encode(),
                         on_delivery=lambda err, _m: err and errors.append(err))
        producer.poll(0)
    producer.flush(60)
    if errors:
        fail(f"delivery errors: {errors[:3]}")
    subject = f"{args.topic}-value"
    if subject not in client.get_subjects():
        fail(f"subject {subject} was not registered: {client.get_subjects()}")
    latest = client.get_latest_version(subject)
    print(f"OK: produced {args.count} {args.format} records, {subject} "
          f"version {latest.version} id {latest.schema_id}")


def consume(args, client):
    de = deserializer(args.format, client)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"check-{args.topic}-{time.time()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([args.topic])
    got = []
    deadline = time.time() + 120
    while len(got) < args.count and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            fail(f"consume error: {msg.error()}")
        value = de(msg.value(), SerializationContext(args.topic, MessageField.VALUE))
        got.append(from_proto(value) if args.format == "protobuf" else value)
    consumer.close()
    if len(got) != args.count:
        fail(f"consumed {len(got)} of {args.count}")
    for i, value in enumerate(got):
        want = record(args.format, i)
        if value != want:
            fail(f"record {i}: got {value!r}, want {want!r}")
    print(f"OK: consumed and deserialized {len(got)} {args.format} records")


def expect_error(code, fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except SchemaRegistryError as e:
        if e.error_code != code:
            fail(f"{fn.__name__}: error code {e.error_code} ({e.error_message}), want {code}")
        return e
    fail(f"{fn.__name__}: succeeded with {result!r}, want error {code}")


def compat(args, client):
    topic = args.topic
    # Avro: a field without a default breaks BACKWARD (the default level); with one it is
    # a new version; a changed type breaks it again.
    subject = f"{topic}-avro"
    v1 = Schema(AVRO_SCHEMA, "AVRO")
    id1 = client.register_schema(subject, v1)
    if client.register_schema(subject, Schema(AVRO_SCHEMA.replace("\n", " "), "AVRO")) != id1:
        fail("the same schema with other whitespace got another id")
    no_default = AVRO_SCHEMA.replace(
        '{"name": "note"', '{"name": "extra", "type": "string"},\n    {"name": "note"')
    e = expect_error(409, client.register_schema, subject, Schema(no_default, "AVRO"))
    if e.http_status_code != 409 or "incompatible" not in e.error_message:
        fail(f"409 answer: {e.http_status_code} {e.error_message}")
    if client.test_compatibility(subject, Schema(no_default, "AVRO")):
        fail("test_compatibility accepted a field without default")
    with_default = AVRO_SCHEMA.replace(
        '{"name": "note"', '{"name": "extra", "type": "string", "default": "x"},\n    {"name": "note"')
    if not client.test_compatibility(subject, Schema(with_default, "AVRO")):
        fail("test_compatibility refused a field with a default")
    id2 = client.register_schema(subject, Schema(with_default, "AVRO"))
    if id2 == id1 or client.get_latest_version(subject).version != 2:
        fail("a compatible change did not make version 2")
    changed_type = AVRO_SCHEMA.replace('{"name": "id", "type": "long"}', '{"name": "id", "type": "string"}')
    expect_error(409, client.register_schema, subject, Schema(changed_type, "AVRO"))
    # A subject-level NONE lets it through; the global level is untouched.
    client.set_compatibility(subject, "NONE")
    if client.get_compatibility(subject) != "NONE" or client.get_compatibility() != "BACKWARD":
        fail("compatibility levels")
    client.register_schema(subject, Schema(changed_type, "AVRO"))
    expect_error(42201, client.register_schema, subject, Schema('{"type": "nope"}', "AVRO"))
    expect_error(42203, client.set_compatibility, subject, "SIDEWAYS")

    # JSON Schema: a property's type changed is refused.
    subject = f"{topic}-json"
    client.register_schema(subject, Schema(JSON_SCHEMA, "JSON"))
    changed = JSON_SCHEMA.replace('"id": {"type": "integer"}', '"id": {"type": "string"}')
    expect_error(409, client.register_schema, subject, Schema(changed, "JSON"))
    expect_error(42201, client.register_schema, subject, Schema('{"type": "nonsense"}', "JSON"))

    # Protobuf (.proto text): a field's type changed is refused; a new field is fine.
    subject = f"{topic}-proto"
    proto_v1 = 'syntax = "proto3";\npackage floe.c;\nmessage M { int64 id = 1; string name = 2; }\n'
    client.register_schema(subject, Schema(proto_v1, "PROTOBUF"))
    proto_bad = proto_v1.replace("int64 id = 1", "string id = 1")
    expect_error(409, client.register_schema, subject, Schema(proto_bad, "PROTOBUF"))
    proto_v2 = proto_v1.replace("string name = 2;", "string name = 2; double score = 3;")
    client.register_schema(subject, Schema(proto_v2, "PROTOBUF"))
    expect_error(42201, client.register_schema, subject, Schema("message {", "PROTOBUF"))

    # References: a schema naming a type of another subject; that subject cannot be deleted
    # while it is referenced.
    addr = '{"type":"record","name":"Addr","namespace":"floe.ref","fields":[{"name":"city","type":"string"}]}'
    client.register_schema(f"{topic}-addr", Schema(addr, "AVRO"))
    user = ('{"type":"record","name":"User","namespace":"floe.ref","fields":'
            '[{"name":"home","type":"floe.ref.Addr"}]}')
    ref = SchemaReference("floe.ref.Addr", f"{topic}-addr", 1)
    user_id = client.register_schema(f"{topic}-user", Schema(user, "AVRO", [ref]))
    if client.get_schema(user_id).references[0].subject != f"{topic}-addr":
        fail("references were not kept")
    expect_error(42206, client.delete_subject, f"{topic}-addr")

    # Not found.
    expect_error(40403, client.get_schema, 999_999)
    expect_error(40401, client.get_latest_version, f"{topic}-nosuch")
    expect_error(40402, client.get_version, f"{topic}-avro", 99)

    # Deletes: soft, then permanent; each in the wrong order is refused with its code.
    subject = f"{topic}-del"
    client.register_schema(subject, Schema('"string"', "AVRO"))
    client.register_schema(subject, Schema('["null","string"]', "AVRO"))
    expect_error(40407, client.delete_version, subject, 1, True)
    if client.delete_version(subject, 1) != 1:
        fail("soft delete of version 1")
    expect_error(40406, client.delete_version, subject, 1)
    if client.get_versions(subject) != [2]:
        fail(f"versions after a soft delete: {client.get_versions(subject)}")
    expect_error(40405, client.delete_subject, subject, True)
    if client.delete_subject(subject) != [2]:
        fail("soft delete of the subject")
    expect_error(40404, client.delete_subject, subject)
    if subject in client.get_subjects():
        fail("a soft-deleted subject is listed")
    if sorted(client.delete_subject(subject, True)) != [1, 2]:
        fail("permanent delete of the subject")
    expect_error(40401, client.delete_subject, subject)
    print("OK: compatibility, errors and deletes as Confluent's registry")


def validate(args, client):
    """A topic with confluent.value.schema.validation=true: values naming a schema of the
    subject <topic>-value are accepted; a schema id of another subject, an unknown id and a
    value without the wire-format header are refused with INVALID_RECORD."""
    topic = args.topic
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([NewTopic(
        topic, 1, config={"confluent.value.schema.validation": "true"})])
    futures[topic].result(30)
    configs = admin.describe_configs(
        [ConfigResource("topic", topic)])
    for fut in configs.values():
        entries = fut.result(30)
        if entries["confluent.value.schema.validation"].value != "true":
            fail("the validation config was not stored")
        strategy = entries["confluent.value.subject.name.strategy"].value
        if not strategy.endswith("TopicNameStrategy"):
            fail(f"default subject name strategy: {strategy}")

    ser = AvroSerializer(client, AVRO_SCHEMA)
    good = ser(record("avro", 1), SerializationContext(topic, MessageField.VALUE))
    other_id = client.register_schema(f"{topic}-other", Schema('"string"', "AVRO"))
    wrong_subject = b"\0" + other_id.to_bytes(4, "big") + b"\x06abc"
    unknown = b"\0" + (987_654).to_bytes(4, "big") + good[5:]
    plain = b'{"id": 1}'

    def send(value):
        results = []
        producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                             "linger.ms": 0, "retries": 0})
        producer.produce(topic, value=value, on_delivery=lambda err, _m: results.append(err))
        producer.flush(30)
        if len(results) != 1:
            fail("no delivery report")
        return results[0]

    accepted = 0
    for name, value in [("good", good), ("wrong subject", wrong_subject),
                        ("unknown id", unknown), ("no header", plain), ("good again", good)]:
        err = send(value)
        if name.startswith("good"):
            if err is not None:
                fail(f"{name}: refused with {err}")
            accepted += 1
        elif err is None or err.code() != KafkaError.INVALID_RECORD:
            fail(f"{name}: {err!r}, want INVALID_RECORD")
    # Only the accepted records are in the log.
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"v-{time.time()}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    deadline = time.time() + 60
    while time.time() < deadline and len(got) < accepted:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got.append(msg.value())
    # Nothing more arrives.
    end = time.time() + 2
    while time.time() < end:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            got.append(msg.value())
    consumer.close()
    if got != [good, good]:
        fail(f"the log holds {len(got)} records, want the 2 accepted ones")
    print("OK: schema validation refused 3 records with INVALID_RECORD and accepted 2")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["produce", "consume", "compat", "validate"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--format", choices=["avro", "protobuf", "json"], default="avro")
    p.add_argument("--topic", default="sr")
    p.add_argument("--count", type=int, default=100)
    args = p.parse_args()
    client = SchemaRegistryClient({"url": args.registry})
    commands = {"produce": produce, "consume": consume, "compat": compat, "validate": validate}
    commands[args.command](args, client)


if __name__ == "__main__":
    main()
