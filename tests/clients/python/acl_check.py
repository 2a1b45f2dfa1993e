#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against Floe's ACLs (tests/tests/acls.rs).

Every client connects over SASL_PLAINTEXT with PLAIN (--bootstrap is that listener). The
admin (a super user) sets up and manages ACLs; alice has only what admin-acls grants her.

Subcommands (each prints one JSON line on success and exits 0; exits 1 with the reason
otherwise):

  setup --bootstrap B --user admin --password P --count N
      As the admin: create the topics the matrix uses (alice-orders, alice-secret, shared,
      bob-orders; existing ones are fine), produce N records to `shared`, commit an offset
      for group `admin-group` (a group alice must not see).
  admin-acls --bootstrap B --user admin --password P
      As the admin: create_acls for alice's bindings (ALICE_ACLS, plus a mistaken READ on
      the prefix `alice-`), describe_acls with a principal filter (exactly those come
      back) and with a MATCH filter for topic alice-orders (the bindings that apply to
      it), delete_acls with a filter for the mistaken binding (exactly it is deleted).
  list-acls --bootstrap B --user admin --password P
      As the admin: every binding (describe_acls with a match-all filter), sorted.
  alice-matrix --bootstrap B --user alice --password P --round R
      As alice: each call of the matrix succeeds or fails with the exact error code
      Kafka answers (the output's `matrix`: check -> result); alice-group reads the N
      records added to `shared` since its last commit. The topic alice creates is
      suffixed with R, so the matrix can run again (after a restart).
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

ALICE = "User:alice"
TIMEOUT = 20


def log(msg):
    print(f"[acl_check] {msg}", file=sys.stderr, flush=True)


def conf(args):
    return {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": args.user,
        "sasl.password": args.password,
    }


def alice_binding(restype, name, pattern, operation, permission=AclPermissionType.ALLOW):
    return AclBinding(restype, name, pattern, ALICE, "*", operation, permission)


T, G, TX = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
LIT, PRE = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED

# What alice may do. DESCRIBE on the prefix is implied by WRITE too; it is granted as an
# operator would write it. DENY ALL on alice-secret beats the prefix ALLOWs (and hides it).
ALICE_ACLS = [
    alice_binding(T, "alice-", PRE, AclOperation.WRITE),
    alice_binding(T, "alice-", PRE, AclOperation.DESCRIBE),
    alice_binding(T, "alice-", PRE, AclOperation.CREATE),
    alice_binding(T, "alice-orders", LIT, AclOperation.DESCRIBE_CONFIGS),
    alice_binding(T, "shared", LIT, AclOperation.READ),
    alice_binding(G, "alice-group", LIT, AclOperation.READ),
    alice_binding(TX, "alice-tx", LIT, AclOperation.WRITE),
    alice_binding(T, "alice-secret", LIT, AclOperation.ALL, AclPermissionType.DENY),
]
# Created too, then deleted with a filter: alice must not READ alice-orders afterwards.
MISTAKEN = alice_binding(T, "alice-", PRE, AclOperation.READ)


def key(b):
    """A binding as a comparable tuple of names."""
    return (
        b.restype.name,
        b.name,
        b.resource_pattern_type.name,
        b.principal,
        b.host,
        b.operation.name,
        b.permission_type.name,
    )


def show(bindings):
    return sorted("/".join(key(b)) for b in bindings)


def error_code(exc):
    """The KafkaError code an exception carries (None if it carries none)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None


def code_name(code):
    for name in dir(KafkaError):
        if not name.startswith("__") and getattr(KafkaError, name) == code:
            return name
    return str(code)


def setup(args):
    admin = AdminClient(conf(args))
    topics = ["alice-orders", "alice-secret", "shared", "bob-orders"]
    fs = admin.create_topics([NewTopic(t, num_partitions=1) for t in topics])
    for t, fut in fs.items():
        try:
            fut.result(timeout=TIMEOUT)
        except KafkaException as e:
            if error_code(e) != KafkaError.TOPIC_ALREADY_EXISTS:
                raise SystemExit(f"create {t}: {e}")
    errors = []
    producer = Producer({**conf(args), "acks": "all"})
    for i in range(args.count):
        producer.produce(
            "shared",
            value=f"shared-{i}".encode(),
            on_delivery=lambda err, msg: err and errors.append(err),
        )
    left = producer.flush(TIMEOUT)
    if left or errors:
        raise SystemExit(f"produce to shared: {left} left, errors {errors[:3]}")
    # A group alice may not see: offsets committed without joining (a simple consumer).
    consumer = Consumer({**conf(args), "group.id": "admin-group", "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition("shared", 0, 1)], asynchronous=False)
    consumer.close()
    print(json.dumps({"topics": topics, "produced": args.count}))


def describe(admin, flt):
    return admin.describe_acls(flt, request_timeout=TIMEOUT).result(timeout=TIMEOUT)


def admin_acls(args):
    admin = AdminClient(conf(args))
    for b, fut in admin.create_acls(ALICE_ACLS + [MISTAKEN], request_timeout=TIMEOUT).items():
        try:
            fut.result(timeout=TIMEOUT)
        except KafkaException as e:
            raise SystemExit(f"create_acls {key(b)}: {e}")

    alice_filter = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        ALICE,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    got = describe(admin, alice_filter)
    if show(got) != show(ALICE_ACLS + [MISTAKEN]):
        raise SystemExit(f"describe_acls for alice: {show(got)}")

    # MATCH: every binding that applies to topic alice-orders (literal, prefixed, wildcard).
    match = AclBindingFilter(
        T,
        "alice-orders",
        ResourcePatternType.MATCH,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    applying = describe(admin, match)
    want = [b for b in ALICE_ACLS + [MISTAKEN] if b.name in ("alice-", "alice-orders")]
    if show(applying) != show(want):
        raise SystemExit(f"describe_acls MATCH alice-orders: {show(applying)}")

    # Delete exactly the mistaken binding, with a filter naming it.
    mistaken_filter = AclBindingFilter(
        T, "alice-", PRE, ALICE, "*", AclOperation.READ, AclPermissionType.ALLOW
    )
    fs = admin.delete_acls([mistaken_filter], request_timeout=TIMEOUT)
    deleted = fs[mistaken_filter].result(timeout=TIMEOUT)
    if show(deleted) != show([MISTAKEN]):
        raise SystemExit(f"delete_acls deleted {show(deleted)}")
    left = describe(admin, alice_filter)
    if show(left) != show(ALICE_ACLS):
        raise SystemExit(f"after delete_acls: {show(left)}")
    created = len(ALICE_ACLS) + 1
    print(json.dumps({"created": created, "deleted": show(deleted), "bindings": show(left)}))


def list_acls(args):
    admin = AdminClient(conf(args))
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    print(json.dumps({"bindings": show(describe(admin, everything))}))


class Matrix:
    """Runs checks; each records what happened against what Kafka answers."""

    def __init__(self):
        self.results = {}
        self.failures = []

    def expect(self, name, expected, fn):
        """expected: "ok", or a KafkaError code the call must fail with."""
        started = time.time()
        detail = ""
        try:
            fn()
            got = "ok"
        except KafkaException as e:
            code = error_code(e)
            got = code_name(code) if code is not None else f"KafkaException {e}"
            detail = str(e)
        except CheckFailed as e:
            got = f"wrong result: {e}"
        want = "ok" if expected == "ok" else code_name(expected)
        took = round(time.time() - started, 2)
        log(f"{name}: {got} (want {want}, {took}s)")
        self.results[name] = got
        if got != want:
            self.failures.append(f"{name}: got {got}, want {want} {detail}".rstrip())


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def future_result(fs):
    """Waits for the single future of an admin call's dict."""
    (fut,) = fs.values()
    return fut.result(timeout=TIMEOUT)


def produce_one(producer, topic):
    """Produces one record; raises the delivery report's error."""
    report = []
    producer.produce(topic, value=b"from alice", on_delivery=lambda err, msg: report.append(err))
    producer.flush(TIMEOUT)
    check(report, f"no delivery report for {topic}")
    if report[0] is not None:
        raise KafkaException(report[0])


def consume(c, args, group, topics=None, assign=None, want_records=0):
    """Polls a consumer until it has want_records records or an error; raises the error."""
    consumer = Consumer(
        {
            **conf(args),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        if topics:
            consumer.subscribe(topics)
        else:
            consumer.assign(assign)
        got = []
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            got.append(msg)
            if want_records and len(got) >= want_records:
                break
        check(want_records and len(got) >= want_records, f"consumed {len(got)} records, no error")
        consumer.commit(asynchronous=False)
        c["consumed"] = len(got)
        c["first_offset"] = got[0].offset()
        (committed,) = consumer.committed([TopicPartition(got[-1].topic(), 0)], timeout=TIMEOUT)
        c["committed"] = committed.offset
    finally:
        consumer.close()


def alice_matrix(args):
    m = Matrix()
    a = conf(args)
    admin = AdminClient(a)
    C = KafkaError
    opts = {"request_timeout": TIMEOUT}

    # Metadata: only describable topics are listed; a named undescribable one is refused.
    def listed():
        names = set(admin.list_topics(timeout=TIMEOUT).topics)
        check({"alice-orders", "shared"} <= names, f"listed {sorted(names)}")
        check(not names & {"bob-orders", "alice-secret"}, f"listed {sorted(names)}")

    def named(topic):
        def run():
            t = admin.list_topics(topic=topic, timeout=TIMEOUT).topics[topic]
            if t.error is not None:
                raise KafkaException(t.error)

        return run

    m.expect(
        "Metadata(all) lists alice-orders, shared; hides bob-orders, alice-secret", "ok", listed
    )
    m.expect("Metadata(bob-orders)", C.TOPIC_AUTHORIZATION_FAILED, named("bob-orders"))
    m.expect(
        "Metadata(alice-secret) (DENY ALL beats PREFIXED ALLOW)",
        C.TOPIC_AUTHORIZATION_FAILED,
        named("alice-secret"),
    )

    # Produce.
    timeout_ms = TIMEOUT * 1000
    producer = Producer({**a, "acks": "all", "message.timeout.ms": timeout_ms})
    idempotent = Producer(
        {**a, "acks": "all", "enable.idempotence": True, "message.timeout.ms": timeout_ms}
    )

    def produce(p, topic):
        return lambda: produce_one(p, topic)

    m.expect("Produce alice-orders (WRITE on prefix alice-)", "ok", produce(producer, "alice-orders"))
    m.expect("Produce shared (READ only)", C.TOPIC_AUTHORIZATION_FAILED, produce(producer, "shared"))
    m.expect(
        "Produce bob-orders (nothing)", C.TOPIC_AUTHORIZATION_FAILED, produce(producer, "bob-orders")
    )
    m.expect(
        "Produce alice-secret (DENY ALL)",
        C.TOPIC_AUTHORIZATION_FAILED,
        produce(producer, "alice-secret"),
    )
    m.expect(
        "InitProducerId idempotent + Produce alice-orders (WRITE on a topic, KIP-679)",
        "ok",
        produce(idempotent, "alice-orders"),
    )

    # Consume: groups and topics.
    c = {}
    m.expect(
        "JoinGroup/SyncGroup/Fetch/OffsetCommit/OffsetFetch alice-group on shared",
        "ok",
        lambda: consume(c, args, "alice-group", topics=["shared"], want_records=args.count),
    )
    m.expect(
        "FindCoordinator other-group",
        C.GROUP_AUTHORIZATION_FAILED,
        lambda: consume({}, args, "other-group", topics=["shared"]),
    )
    m.expect(
        "Fetch alice-orders (no READ: the prefix READ was deleted)",
        C.TOPIC_AUTHORIZATION_FAILED,
        lambda: consume({}, args, "alice-group", assign=[TopicPartition("alice-orders", 0, 0)]),
    )
    m.expect(
        "Subscribe bob-orders (not describable)",
        C.TOPIC_AUTHORIZATION_FAILED,
        lambda: consume({}, args, "alice-group", topics=["bob-orders"]),
    )

    # Transactions: WRITE on the transactional id; offsets sent to the transaction need
    # READ on the group (AddOffsetsToTxn, TxnOffsetCommit) and on the topic.
    def transaction(txn_id, group="alice-group"):
        def run():
            p = Producer({**a, "transactional.id": txn_id, "message.timeout.ms": timeout_ms})
            p.init_transactions(TIMEOUT)
            p.begin_transaction()
            p.produce("alice-orders", value=b"in a transaction")
            # The offset alice-group already has: sending it again changes nothing.
            offsets = [TopicPartition("shared", 0, c.get("committed", 0))]
            metadata = Consumer({**a, "group.id": group}).consumer_group_metadata()
            try:
                p.send_offsets_to_transaction(offsets, metadata, TIMEOUT)
            except KafkaException:
                p.abort_transaction(TIMEOUT)
                raise
            p.commit_transaction(TIMEOUT)

        return run

    m.expect(
        "InitProducerId/AddPartitionsToTxn/AddOffsetsToTxn/TxnOffsetCommit/EndTxn alice-tx",
        "ok",
        transaction("alice-tx"),
    )
    m.expect(
        "InitProducerId bob-tx (FindCoordinator)",
        C.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        transaction("bob-tx"),
    )
    m.expect(
        "AddOffsetsToTxn alice-tx for other-group",
        C.GROUP_AUTHORIZATION_FAILED,
        transaction("alice-tx", "other-group"),
    )

    # Group admin calls.
    def groups_listed():
        ids = {g.group_id for g in admin.list_consumer_groups(**opts).result(TIMEOUT).valid}
        check("alice-group" in ids and "admin-group" not in ids, f"listed groups {sorted(ids)}")

    def describe_group(group):
        return lambda: future_result(admin.describe_consumer_groups([group], **opts))

    def offsets(group, want=None):
        def run():
            request = [ConsumerGroupTopicPartitions(group)]
            got = future_result(admin.list_consumer_group_offsets(request, **opts))
            if want is not None:
                parts = {(p.topic, p.partition): p.offset for p in got.topic_partitions}
                check(parts.get(("shared", 0)) == want, f"offsets of {group}: {parts}")

        return run

    m.expect("ListGroups lists alice-group, hides admin-group", "ok", groups_listed)
    m.expect("DescribeGroups alice-group", "ok", describe_group("alice-group"))
    m.expect(
        "DescribeGroups admin-group (FindCoordinator)",
        C.GROUP_AUTHORIZATION_FAILED,
        describe_group("admin-group"),
    )
    m.expect(
        "OffsetFetch alice-group (the commit is there)",
        "ok",
        offsets("alice-group", c.get("committed")),
    )
    m.expect(
        "ListConsumerGroupOffsets admin-group (FindCoordinator)",
        C.GROUP_AUTHORIZATION_FAILED,
        offsets("admin-group"),
    )
    m.expect(
        "DeleteGroups alice-group (no DELETE)",
        C.GROUP_AUTHORIZATION_FAILED,
        lambda: future_result(admin.delete_consumer_groups(["alice-group"], **opts)),
    )

    # Topic admin calls. The topic alice creates is new in each round.
    new_topic = f"alice-new-{args.round}"

    def create(name):
        return lambda: future_result(admin.create_topics([NewTopic(name, num_partitions=1)], **opts))

    def delete(name):
        return lambda: future_result(admin.delete_topics([name], **opts))

    m.expect("CreateTopics alice-new-<round> (CREATE on prefix alice-)", "ok", create(new_topic))
    m.expect("CreateTopics bob-new", C.TOPIC_AUTHORIZATION_FAILED, create("bob-new"))
    m.expect(
        "DeleteTopics alice-new-<round> (no DELETE)",
        C.TOPIC_AUTHORIZATION_FAILED,
        delete(new_topic),
    )
    m.expect("DeleteTopics bob-orders", C.TOPIC_AUTHORIZATION_FAILED, delete("bob-orders"))
    m.expect(
        "CreatePartitions alice-orders (no ALTER)",
        C.TOPIC_AUTHORIZATION_FAILED,
        lambda: future_result(
            admin.create_partitions([NewPartitions("alice-orders", 2)], **opts)
        ),
    )
    m.expect(
        "DeleteRecords alice-orders (no DELETE)",
        C.TOPIC_AUTHORIZATION_FAILED,
        lambda: future_result(
            admin.delete_records([TopicPartition("alice-orders", 0, 1)], **opts)
        ),
    )

    # Configs.
    def describe_configs(restype, name):
        return lambda: future_result(admin.describe_configs([ConfigResource(restype, name)], **opts))

    retention = ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)
    alter = ConfigResource(T, "alice-orders", incremental_configs=[retention])
    m.expect(
        "DescribeConfigs topic alice-orders (DESCRIBE_CONFIGS)",
        "ok",
        describe_configs(T, "alice-orders"),
    )
    m.expect(
        "DescribeConfigs topic shared", C.TOPIC_AUTHORIZATION_FAILED, describe_configs(T, "shared")
    )
    m.expect(
        "DescribeConfigs broker 1",
        C.CLUSTER_AUTHORIZATION_FAILED,
        describe_configs(ResourceType.BROKER, "1"),
    )
    m.expect(
        "IncrementalAlterConfigs topic alice-orders (no ALTER_CONFIGS)",
        C.TOPIC_AUTHORIZATION_FAILED,
        lambda: future_result(admin.incremental_alter_configs([alter], **opts)),
    )

    # Cluster-level calls.
    any_filter = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    grant_self = alice_binding(T, "bob-orders", LIT, AclOperation.ALL)

    # librdkafka drops DescribeAcls' top-level error code: a denied describe_acls reads as
    # "no bindings" (the Java client and tests/tests/acls.rs see the error itself).
    def describe_denied():
        got = describe(admin, any_filter)
        check(not got, f"alice described {show(got)}")

    scram = UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw"
    )
    m.expect(
        "CreateAcls (granting herself bob-orders)",
        C.CLUSTER_AUTHORIZATION_FAILED,
        lambda: future_result(admin.create_acls([grant_self], **opts)),
    )
    m.expect("DescribeAcls (denied: librdkafka shows no bindings)", "ok", describe_denied)
    m.expect(
        "DeleteAcls",
        C.CLUSTER_AUTHORIZATION_FAILED,
        lambda: future_result(admin.delete_acls([any_filter], **opts)),
    )
    m.expect(
        "AlterUserScramCredentials alice",
        C.CLUSTER_AUTHORIZATION_FAILED,
        lambda: future_result(admin.alter_user_scram_credentials([scram], **opts)),
    )
    m.expect(
        "DescribeCluster (anyone)", "ok", lambda: admin.describe_cluster(**opts).result(TIMEOUT)
    )

    if m.failures:
        raise SystemExit("matrix mismatches:\n  " + "\n  ".join(m.failures))
    print(
        json.dumps(
            {
                "round": args.round,
                "matrix": m.results,
                "consumed": c.get("consumed"),
                "first_offset": c.get("first_offset"),
                "committed": c.get("committed"),
            }
        )
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["setup", "admin-acls", "list-acls", "alice-matrix"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--round", default=str(uuid.uuid4())[:8], help="suffix of the topic alice creates")
    args = p.parse_args()
    {
        "setup": setup,
        "admin-acls": admin_acls,
        "list-acls": list_acls,
        "alice-matrix": alice_matrix,
    }[args.command](args)


if __name__ == "__main__":
    main()
