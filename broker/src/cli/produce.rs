//! `floe produce TOPIC`: records from standard input, one per line, batched per partition
//! and sent to each partition's leader; prints the offset of every record (none for acks=0,
//! which has no response).

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::records::Compression;
use serde_json::{Value, json};

use crate::cli::args::{Codec, InputFormat, ProduceArgs};
use crate::cli::client::{Client, TopicMeta, topic_name};
use crate::cli::error::{self, check};
use crate::cli::output::Out;
use crate::cli::partitioner::Partitioner;
use crate::cli::records::{OutRecord, encode_batch};

/// A batch stops growing at this many bytes of records.
const BATCH_BYTES: usize = 1024 * 1024;

/// Records waiting to be sent, by partition, each with its input line number.
struct Pending {
    records: BTreeMap<i32, Vec<(u64, OutRecord)>>,
    bytes: usize,
}

/// Where the records went: (partition, offset) by input line number.
struct Produced {
    offsets: BTreeMap<u64, (i32, Option<i64>)>,
}

/// Runs `floe produce`.
pub fn run(client: &mut Client, out: &mut Out, args: ProduceArgs) -> anyhow::Result<()> {
    let topic = client.topic(&args.topic, true)?;
    let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if let Some(p) = args.partition
        && p >= count
    {
        return Err(error::kafka(
            3,
            format!("producing to {}[{p}]", args.topic),
            format!("the topic has {count} partitions"),
        ));
    }
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut partitioner = Partitioner::new(count, start);
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Some(Bytes::from(v.clone()))))
        .collect();
    let compression = match args.compression {
        Codec::None => Compression::None,
        Codec::Gzip => Compression::Gzip,
        Codec::Snappy => Compression::Snappy,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd => Compression::Zstd,
    };
    let mut pending = Pending {
        records: BTreeMap::new(),
        bytes: 0,
    };
    let mut produced = Produced {
        offsets: BTreeMap::new(),
    };
    // Sends what is pending (the records' topic, acks and compression are the run's).
    let mut flush = |pending: &mut Pending, produced: &mut Produced| {
        send(client, &topic, &args, compression, pending, produced)
    };
    let mut line_number = 0u64;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (record, chosen) = match args.input {
            InputFormat::Text => {
                let (key, value) = split(&line, &args);
                let record = OutRecord {
                    key,
                    value: Some(value),
                    headers: headers.clone(),
                    timestamp: now_ms(),
                };
                (record, args.partition)
            }
            InputFormat::Json => {
                let (mut record, partition) = match parse_json_line(&line) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        // The lines before it are sent and reported, then the command fails.
                        flush(&mut pending, &mut produced)?;
                        report(out, &args, &produced)?;
                        return Err(anyhow::anyhow!("input line {}: {e}", line_number + 1));
                    }
                };
                record.headers.splice(0..0, headers.iter().cloned());
                (record, partition.or(args.partition))
            }
        };
        if let Some(p) = chosen
            && p >= count
        {
            return Err(error::kafka(
                3,
                format!("producing to {}[{p}]", args.topic),
                format!("the topic has {count} partitions"),
            ));
        }
        let partition = chosen.unwrap_or_else(|| partitioner.partition(record.key.as_deref()));
        pending.bytes += record.size();
        let batch = pending.records.entry(partition).or_default();
        batch.push((line_number, record));
        line_number += 1;
        if batch.len() >= args.batch_records as usize || pending.bytes >= BATCH_BYTES {
            flush(&mut pending, &mut produced)?;
        }
    }
    flush(&mut pending, &mut produced)?;
    report(out, &args, &produced)
}

fn split(line: &[u8], args: &ProduceArgs) -> (Option<Bytes>, Bytes) {
    if let Some(sep) = args.key_separator.as_deref().map(str::as_bytes)
        && !sep.is_empty()
        && let Some(at) = line.windows(sep.len()).position(|w| w == sep)
    {
        return (
            Some(Bytes::copy_from_slice(&line[..at])),
            Bytes::copy_from_slice(&line[at + sep.len()..]),
        );
    }
    let key = args.key.as_ref().map(|k| Bytes::from(k.clone()));
    (key, Bytes::copy_from_slice(line))
}

/// One `--input json` line: `{"key": "k"|null, "value": "v"|null, "headers": {"h": "v"} or
/// [["h", "v"], ...], "partition": 0, "timestamp": 1700000000000}`, every field optional
/// (a missing value is a null value: a tombstone). Returns the record and its partition.
fn parse_json_line(line: &[u8]) -> Result<(OutRecord, Option<i32>), String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(fields) = v else {
        return Err("not a JSON object".into());
    };
    let bytes = |name: &str| -> Result<Option<Bytes>, String> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(Bytes::from(s.clone()))),
            Some(other) => Err(format!("{name} must be a string or null, not {other}")),
        }
    };
    for name in fields.keys() {
        if !matches!(
            name.as_str(),
            "key" | "value" | "headers" | "partition" | "timestamp"
        ) {
            return Err(format!("unknown field {name}"));
        }
    }
    let header_value = |k: &str, v: &Value| -> Result<(String, Option<Bytes>), String> {
        match v {
            Value::Null => Ok((k.to_string(), None)),
            Value::String(s) => Ok((k.to_string(), Some(Bytes::from(s.clone())))),
            other => Err(format!("header {k} must be a string or null, not {other}")),
        }
    };
    let headers = match fields.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| header_value(k, v))
            .collect::<Result<_, _>>()?,
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(k), v]) => header_value(k, v),
                _ => Err(format!("a header must be [name, value], not {pair}")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => Err(format!(
            "headers must be an object or an array, not {other}"
        ))?,
    };
    let int = |name: &str| -> Result<Option<i64>, String> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("{name} must be an integer, not {v}")),
        }
    };
    let partition = match int("partition")? {
        None => None,
        Some(p) => Some(
            i32::try_from(p)
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("partition {p} is out of range"))?,
        ),
    };
    let record = OutRecord {
        key: bytes("key")?,
        value: bytes("value")?,
        headers,
        timestamp: int("timestamp")?.unwrap_or_else(now_ms),
    };
    Ok((record, partition))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sends every pending batch, one Produce request per leader; partitions that fail with a
/// retriable error (a leader change) are sent again after a new Metadata lookup, the others
/// are not resent, so no record is written twice by a retry of a request that succeeded.
fn send(
    client: &mut Client,
    topic: &TopicMeta,
    args: &ProduceArgs,
    compression: Compression,
    pending: &mut Pending,
    produced: &mut Produced,
) -> anyhow::Result<()> {
    let mut batches: BTreeMap<i32, (Vec<u64>, Bytes)> = BTreeMap::new();
    for (p, records) in std::mem::take(&mut pending.records) {
        let (lines, records): (Vec<u64>, Vec<OutRecord>) = records.into_iter().unzip();
        batches.insert(p, (lines, encode_batch(&records, compression)?));
    }
    pending.bytes = 0;
    let timeout = i32::try_from(client.request_timeout().as_millis()).unwrap_or(i32::MAX);
    let mut meta = topic.clone();
    let mut remaining = batches;
    client.retry(|c| {
        if remaining.is_empty() {
            return Ok(());
        }
        meta = c.topic(&meta.name, false)?;
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for &p in remaining.keys() {
            by_leader.entry(meta.leader(p)?).or_default().push(p);
        }
        let mut first_error = None;
        for (leader, parts) in by_leader {
            let req = ProduceRequest::default()
                .with_acks(args.acks)
                .with_timeout_ms(timeout)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(topic_name(&meta.name))
                        .with_partition_data(
                            parts
                                .iter()
                                .filter_map(|p| remaining.get(p).map(|(_, b)| (p, b)))
                                .map(|(&p, batch)| {
                                    PartitionProduceData::default()
                                        .with_index(p)
                                        .with_records(Some(batch.clone()))
                                })
                                .collect(),
                        ),
                ]);
            let conn = c.node(leader)?;
            if args.acks == 0 {
                let version = conn.version::<ProduceRequest>()?;
                conn.send_at(&req, version)?;
                for p in &parts {
                    if let Some((lines, _)) = remaining.remove(p) {
                        produced
                            .offsets
                            .extend(lines.into_iter().map(|l| (l, (*p, None))));
                    }
                }
                continue;
            }
            let resp = conn.call(&req)?;
            for t in resp.responses {
                for r in t.partition_responses {
                    let outcome = check(r.error_code, r.error_message.as_deref(), || {
                        format!("producing to {}[{}]", meta.name, r.index)
                    });
                    match outcome {
                        Ok(()) => {
                            if let Some((lines, _)) = remaining.remove(&r.index) {
                                produced.offsets.extend(lines.into_iter().zip(0i64..).map(
                                    |(line, i)| {
                                        (line, (r.index, Some(r.base_offset.saturating_add(i))))
                                    },
                                ));
                            }
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if remaining.is_empty() => Ok(()),
            None => Err(anyhow::anyhow!(
                "the broker did not answer for partitions {:?}",
                remaining.keys().collect::<Vec<_>>()
            )),
        }
    })
}

fn report(out: &mut Out, args: &ProduceArgs, produced: &Produced) -> anyhow::Result<()> {
    if out.json() {
        let records: Vec<Value> = produced
            .offsets
            .values()
            .map(|(p, o)| json!({"partition": p, "offset": o}))
            .collect();
        return out.json_line(&json!({"topic": args.topic, "records": records}));
    }
    for (p, o) in produced.offsets.values() {
        let line = match o {
            Some(o) => format!("Produced to {}[{p}] at offset {o}\n", args.topic),
            None => format!("Sent to {}[{p}] (acks=0: no offset)\n", args.topic),
        };
        out.write(&line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_input_lines() {
        let (r, p) = parse_json_line(
            br#"{"key":"k","value":null,"headers":[["a","1"],["b",null]],"partition":2,"timestamp":5}"#,
        )
        .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value, None, "a tombstone");
        assert_eq!(
            r.headers,
            vec![
                ("a".to_string(), Some(Bytes::from_static(b"1"))),
                ("b".to_string(), None)
            ]
        );
        assert_eq!((p, r.timestamp), (Some(2), 5));
        let (r, p) = parse_json_line(br#"{"value":"v","headers":{"h":"x"}}"#).unwrap();
        assert_eq!((r.key, p), (None, None));
        assert_eq!(r.value.as_deref(), Some(&b"v"[..]));
        assert!(r.timestamp > 0, "defaults to now");
        for (bad, why) in [
            (&b"nope"[..], "not JSON"),
            (b"[1]", "not a JSON object"),
            (br#"{"value":3}"#, "value must be a string"),
            (br#"{"partition":-1}"#, "out of range"),
            (br#"{"partition":"1"}"#, "must be an integer"),
            (br#"{"headers":[["a"]]}"#, "[name, value]"),
            (br#"{"val":"x"}"#, "unknown field val"),
        ] {
            let err = parse_json_line(bad).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
