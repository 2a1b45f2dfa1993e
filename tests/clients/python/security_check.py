#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against Floe's secured listeners.

Subcommands (each prints one JSON line on success and exits 0; exits 1 with the reason
otherwise):

  scram-users --bootstrap B --user U --password P [--mechanism M ...]
      AlterUserScramCredentials (AdminClient.alter_user_scram_credentials) over B, then
      DescribeUserScramCredentials to check what the broker stored.
  roundtrip --bootstrap B --topic T --count N <security options>
      Produce N records with acks=all over the secured listener, consume them back with a
      group, check every value.
  auth-fails --bootstrap B <security options>
      Expect authentication to fail: a producer's error callback must see an
      authentication error (not a hang, not a timeout) within 30 s.

  throttled-produce --bootstrap B --topic T --client-id C --seconds S
      Produce 1 KiB records as fast as the broker takes them for S seconds; report the
      acknowledged bytes per second after a warm-up (--warmup seconds) and the largest throttle time
      librdkafka saw (its statistics' `throttle.max`).

  oauth-keys --dir D
      Writes an EC P-256 key (D/oauth-key.pem) and its JWKS (D/jwks.json, kid "k1").

Security options: --protocol SASL_SSL|SSL|SASL_PLAINTEXT --mechanism M --user U
--password P --ca FILE --cert FILE --key FILE; for OAUTHBEARER, --oauth-key FILE signs
ES256 tokens (sub = --user, iss "floe-test", aud "floe") valid for --token-seconds
(negative: already expired).
"""

import argparse
import base64
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)


def log(msg):
    print(f"[security_check] {msg}", file=sys.stderr, flush=True)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def oauth_keys(args):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(f"{args.dir}/oauth-key.pem", "wb") as f:
        f.write(pem)
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "kid": "k1",
        "use": "sig",
        "alg": "ES256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    with open(f"{args.dir}/jwks.json", "w") as f:
        json.dump({"keys": [jwk]}, f)
    print(json.dumps({"jwks": f"{args.dir}/jwks.json"}))


def signed_token(key_file, subject, seconds):
    """An ES256 JWT for `subject`, expiring `seconds` from now."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    now = int(time.time())
    header = {"alg": "ES256", "typ": "JWT", "kid": "k1"}
    claims = {
        "sub": subject,
        "iss": "floe-test",
        "aud": "floe",
        "iat": now - 5 if seconds > 0 else now - 600,
        "exp": now + seconds,
    }
    signing_input = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input + "." + b64url(signature), claims["exp"]


def security_conf(args):
    conf = {"bootstrap.servers": args.bootstrap}
    if args.protocol:
        conf["security.protocol"] = args.protocol
    if args.mechanism == "OAUTHBEARER":
        conf["sasl.mechanism"] = "OAUTHBEARER"
        conf["oauth_cb"] = lambda _config: signed_token(
            args.oauth_key, args.user, args.token_seconds
        )
    elif args.mechanism:
        conf["sasl.mechanism"] = args.mechanism
        conf["sasl.username"] = args.user
        conf["sasl.password"] = args.password
    if args.ca:
        conf["ssl.ca.location"] = args.ca
        # The test CA signs a certificate for 127.0.0.1; librdkafka checks the host name.
        conf["ssl.endpoint.identification.algorithm"] = "https"
    if args.cert:
        conf["ssl.certificate.location"] = args.cert
        conf["ssl.key.location"] = args.key
    return conf


def scram_users(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    mechanisms = [getattr(ScramMechanism, m.replace("-", "_")) for m in args.mechanisms]
    # One request per mechanism: Kafka (KRaft) refuses two changes of one user in one
    # request with DUPLICATE_RESOURCE, and so does Floe.
    for m in mechanisms:
        upsert = UserScramCredentialUpsertion(
            args.user, ScramCredentialInfo(m, 8192), args.password.encode()
        )
        for fut in admin.alter_user_scram_credentials([upsert]).values():
            fut.result(timeout=30)
    described = admin.describe_user_scram_credentials([args.user])
    infos = described[args.user].result(timeout=30).scram_credential_infos
    got = sorted(str(i.mechanism) for i in infos)
    if len(infos) != len(mechanisms) or any(i.iterations != 8192 for i in infos):
        raise SystemExit(f"describe returned {infos}")
    print(json.dumps({"user": args.user, "mechanisms": got}))


def roundtrip(args):
    conf = security_conf(args)
    admin = AdminClient(conf)
    fs = admin.create_topics([NewTopic(args.topic, num_partitions=2)])
    for fut in fs.values():
        fut.result(timeout=30)
    errors = []
    producer = Producer(
        {**conf, "acks": "all", "enable.idempotence": True, "error_cb": errors.append}
    )
    acked = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append(msg.offset())

    for i in range(args.count):
        producer.produce(args.topic, key=str(i).encode(), value=f"value-{i}".encode(), on_delivery=on_delivery)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    if left or errors or len(acked) != args.count:
        raise SystemExit(f"produce: {left} left, {len(acked)} acked, errors {errors[:3]}")
    consumer = Consumer(
        {
            **conf,
            "group.id": f"g-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        }
    )
    consumer.subscribe([args.topic])
    seen = set()
    deadline = time.time() + 90
    while len(seen) < args.count and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            raise SystemExit(f"consume: {msg.error()}")
        i = int(msg.key())
        if msg.value() != f"value-{i}".encode():
            raise SystemExit(f"record {i} has value {msg.value()!r}")
        seen.add(i)
    consumer.close()
    if len(seen) != args.count:
        raise SystemExit(f"consumed {len(seen)} of {args.count}")
    print(json.dumps({"produced": len(acked), "consumed": len(seen)}))


def auth_fails(args):
    errors = []
    producer = Producer({**security_conf(args), "error_cb": errors.append})
    producer.produce("auth-fails", value=b"never")
    start = time.time()

    def auth_errors():
        return [e for e in errors if e.code() == KafkaError._AUTHENTICATION]

    while not auth_errors() and time.time() - start < 30:
        producer.poll(0.2)
    elapsed = time.time() - start
    auth = auth_errors()
    if not auth:
        raise SystemExit(f"expected an authentication error, got {errors} after {elapsed:.1f}s")
    print(json.dumps({"error": auth[0].str(), "seconds": round(elapsed, 2)}))


def throttled_produce(args):
    stats = {"throttle_max": 0}

    def on_stats(raw):
        for b in json.loads(raw).get("brokers", {}).values():
            stats["throttle_max"] = max(stats["throttle_max"], b.get("throttle", {}).get("max", 0))

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": args.client_id,
            "acks": "all",
            "linger.ms": 5,
            "statistics.interval.ms": 500,
            "stats_cb": on_stats,
            "queue.buffering.max.kbytes": 4096,
        }
    )
    acked = []

    def on_delivery(err, msg):
        if err is None:
            acked.append((time.time(), len(msg.value())))

    payload = b"x" * 1024
    start = time.time()
    while time.time() - start < args.seconds:
        try:
            producer.produce(args.topic, value=payload, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    producer.flush(30)
    warm = start + args.warmup
    end = start + args.seconds
    window = [n for t, n in acked if warm <= t <= end]
    rate = sum(window) / (end - warm)
    print(json.dumps({"bytes_per_sec": rate, "throttle_max_ms": stats["throttle_max"], "acked": len(acked)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument(
        "command",
        choices=["scram-users", "roundtrip", "auth-fails", "throttled-produce", "oauth-keys"],
    )
    p.add_argument("--dir")
    p.add_argument("--oauth-key")
    p.add_argument("--token-seconds", type=int, default=300)
    p.add_argument("--client-id")
    p.add_argument("--seconds", type=float, default=12)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--protocol")
    p.add_argument("--mechanism")
    p.add_argument("--mechanisms", nargs="*", default=["SCRAM-SHA-256", "SCRAM-SHA-512"])
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args()
    {
        "scram-users": scram_users,
        "roundtrip": roundtrip,
        "auth-fails": auth_fails,
        "throttled-produce": throttled_produce,
        "oauth-keys": oauth_keys,
    }[args.command](args)


if __name__ == "__main__":
    main()
