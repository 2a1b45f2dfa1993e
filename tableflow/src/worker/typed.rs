//! Schema mode (`table.mode=schema`): record values in the schema registry's wire format
//! become typed rows.
//!
//! The table is created from the latest version of its subject. Each record is decoded with
//! the schema its id names (whatever subject registered it) and its columns matched to the
//! table's by name, through a plan worked out once per schema id (and Protobuf message):
//!
//! - the schema's columns are all in the table with the same types (or types the table's
//!   widen): the record is decoded into the table's columns; columns it lacks are null;
//! - the schema adds columns (or fields of struct columns, or widens int → long,
//!   float → double): the table evolves first, in its own commit (a new current schema, no
//!   snapshot, existing columns keep their field ids), then the record is written;
//! - a column's type conflicts with the table's, the id is unknown, the payload is not in
//!   the wire format or does not decode: the record goes to the dead-letter table with the
//!   reason, and the partition goes on.

use std::collections::HashMap;
use std::sync::Arc;

use floe_registry::Registry;
use floe_registry::schema::Parsed;
use floe_registry::wire;
use iceberg::spec::NestedFieldRef;

use crate::catalog::FloeCatalog;
use crate::convert::{self, KafkaRecord, Rejected};
use crate::error::TableflowError;
use crate::schema::{TableLayout, merge_value_fields};
use crate::sink::TableSink;
use crate::typed::avro::direct::Program;
use crate::typed::columns::Columns;
use crate::typed::{self, Decoder, FieldIds, Value};

/// What to do with the records of one schema id (and Protobuf message).
#[derive(Clone)]
enum Plan {
    /// Decode into the table as it is.
    Fits(Arc<Parsed>),
    /// The table must first evolve to these value columns.
    Evolve(Vec<NestedFieldRef>),
    /// To the dead-letter table, with this reason.
    Invalid(String),
}

/// A record's schema: its id and, for Protobuf, the message indexes.
type PlanKey = (i32, Vec<i32>);

/// Schema mode's state in a worker.
pub(crate) struct Typed {
    registry: Arc<Registry>,
    subject: String,
    wire_format: bool,
    partition_by: String,
    plans: HashMap<PlanKey, Plan>,
}

impl Typed {
    /// Schema mode over `registry` for the table of `subject`.
    pub fn new(
        registry: Arc<Registry>,
        subject: String,
        wire_format: bool,
        partition_by: String,
    ) -> Typed {
        Typed {
            registry,
            subject,
            wire_format,
            partition_by,
            plans: HashMap::new(),
        }
    }

    /// A layout that only says "schema mode" (an existing table's own schema is used).
    pub fn existing_table() -> Result<TableLayout, TableflowError> {
        TableLayout::typed(Vec::new(), &mut FieldIds::new(None, 1), "none")
            .map_err(TableflowError::Internal)
    }

    /// The layout a new table is created with: the subject's latest schema.
    pub fn create_layout(&self) -> Result<TableLayout, TableflowError> {
        let latest = self
            .registry
            .version(
                &self.subject,
                floe_registry::registry::VersionSpec::Latest,
                false,
            )
            .map_err(|e| {
                TableflowError::Internal(format!(
                    "the table is created from the latest schema of subject {}: {}",
                    self.subject, e.message
                ))
            })?;
        let parsed = self
            .registry
            .parsed(latest.schema.id)
            .map_err(|e| TableflowError::Internal(e.message))?;
        let mut ids = FieldIds::new(None, 1);
        let value = typed::value_fields(&parsed, None, &mut ids).map_err(|e| {
            TableflowError::Internal(format!(
                "schema {} of subject {} cannot be a table: {e}",
                latest.schema.id, self.subject
            ))
        })?;
        TableLayout::typed(value, &mut ids, &self.partition_by).map_err(TableflowError::Internal)
    }

    /// The schema of `payload` (after the wire header), with its plan key.
    fn schema_of(&self, id: i32, payload: &[u8]) -> Result<(Arc<Parsed>, PlanKey), String> {
        let parsed = self
            .registry
            .parsed(id)
            .map_err(|e| format!("schema id {id}: {}", e.message))?;
        let indexes = match &*parsed {
            Parsed::Protobuf(_) => {
                wire::split_indexes(payload)
                    .map_err(|e| format!("value does not decode with schema id {id}: {e}"))?
                    .0
            }
            _ => Vec::new(),
        };
        Ok((parsed, (id, indexes)))
    }

    fn plan(
        &mut self,
        sink: &TableSink,
        id: i32,
        payload: &[u8],
    ) -> Result<(PlanKey, Plan), String> {
        let (parsed, key) = self.schema_of(id, payload)?;
        if let Some(plan) = self.plans.get(&key) {
            return Ok((key, plan.clone()));
        }
        let metadata = sink.table().metadata();
        let mut ids = FieldIds::new(
            Some(metadata.current_schema()),
            metadata.last_column_id().saturating_add(1),
        );
        let indexes = matches!(&*parsed, Parsed::Protobuf(_)).then_some(key.1.as_slice());
        let plan = match typed::value_fields(&parsed, indexes, &mut ids) {
            Err(e) => Plan::Invalid(format!("schema id {id} cannot be a table: {e}")),
            Ok(fields) => match merge_value_fields(&sink.layout().value_fields(), &fields) {
                Ok(None) => Plan::Fits(parsed),
                Ok(Some(merged)) => Plan::Evolve(merged),
                Err(e) => Plan::Invalid(format!("schema id {id} does not fit the table: {e}")),
            },
        };
        self.plans.insert(key.clone(), plan.clone());
        Ok((key, plan))
    }

    /// Writes `records` into `main`, evolving its schema first when a record's schema adds
    /// columns; returns the records that go to the dead-letter table.
    pub async fn write(
        &mut self,
        main: &mut TableSink,
        catalog: &FloeCatalog,
        records: &[&KafkaRecord],
    ) -> Result<Vec<Rejected>, TableflowError> {
        if self.wire_format {
            return self.write_framed(main, catalog, records).await;
        }
        // Bare payloads: each is decoded with the subject's latest version as of now,
        // framed as if it carried that id (a Protobuf payload as the file's first message).
        let latest = match self.registry.version(
            &self.subject,
            floe_registry::registry::VersionSpec::Latest,
            false,
        ) {
            Ok(v) => Some((v.schema.id, v.schema.schema_type)),
            Err(_) => None,
        };
        let framed: Vec<KafkaRecord> = records
            .iter()
            .map(|r| {
                let mut r = (*r).clone();
                if let (Some(value), Some((id, ty))) = (&r.value, latest) {
                    let indexes =
                        (ty == floe_registry::schema::SchemaType::Protobuf).then_some(&[0][..]);
                    let mut bytes = wire::header(id, indexes);
                    bytes.extend_from_slice(value);
                    r.value = Some(bytes.into());
                }
                r
            })
            .collect();
        let refs: Vec<&KafkaRecord> = framed.iter().collect();
        let mut rejected = self.write_framed(main, catalog, &refs).await?;
        // Dead letters keep the record as it is in the log.
        let originals: HashMap<(i32, i64), &KafkaRecord> = records
            .iter()
            .map(|r| ((r.partition, r.offset), *r))
            .collect();
        for r in &mut rejected {
            if let Some(original) = originals.get(&(r.record.partition, r.record.offset)) {
                r.record = (*original).clone();
            }
            if latest.is_none() {
                r.error = format!(
                    "subject {} has no schema to decode bare payloads with",
                    self.subject
                );
            }
        }
        Ok(rejected)
    }

    async fn write_framed(
        &mut self,
        main: &mut TableSink,
        catalog: &FloeCatalog,
        records: &[&KafkaRecord],
    ) -> Result<Vec<Rejected>, TableflowError> {
        // Evolve until every schema in these records fits (one evolution per new schema).
        loop {
            let mut evolve = None;
            for r in records {
                let Some(value) = r.value.as_deref() else {
                    continue;
                };
                let Ok((id, payload)) = wire::split(value) else {
                    continue;
                };
                if let Ok((_, Plan::Evolve(fields))) = self.plan(main, id, payload) {
                    evolve = Some(fields);
                    break;
                }
            }
            let Some(fields) = evolve else { break };
            let metadata = main.table().metadata();
            let mut ids = FieldIds::new(
                Some(metadata.current_schema()),
                metadata.last_column_id().saturating_add(1),
            );
            let layout = TableLayout::typed(fields, &mut ids, &self.partition_by)
                .map_err(TableflowError::Internal)?;
            main.evolve(catalog, layout).await?;
            self.plans.clear();
        }

        let mut rejected = Vec::new();
        let value_arrow = main
            .layout()
            .typed_arrow
            .clone()
            .ok_or_else(|| TableflowError::Internal("not a schema-mode table".into()))?;
        // First the plan of every record, then one decoder per schema for all of them (a
        // decoder keeps what it works out about its schema).
        // The distinct schemas of these records; each planned record names its schema by
        // index. A run of records with the same Avro or JSON Schema id (the usual case) is
        // planned once: no registry lookup or key hashing per record.
        let mut schemas: Vec<(PlanKey, Arc<Parsed>)> = Vec::new();
        let mut last: Option<(i32, usize)> = None;
        let mut planned: Vec<(&KafkaRecord, usize, &[u8])> = Vec::with_capacity(records.len());
        for r in records {
            let reject = |error: String| Rejected {
                record: (*r).clone(),
                error,
            };
            let Some(value) = r.value.as_deref() else {
                rejected.push(reject(
                    "null value (tombstone) in a schema-mode table".into(),
                ));
                continue;
            };
            let (id, payload) = match wire::split(value) {
                Ok(x) => x,
                Err(e) => {
                    rejected.push(reject(format!(
                        "value is not in the schema registry's wire format: {e}"
                    )));
                    continue;
                }
            };
            if let Some((last_id, index)) = last
                && last_id == id
            {
                planned.push((r, index, payload));
                continue;
            }
            match self.plan(main, id, payload) {
                Err(e) | Ok((_, Plan::Invalid(e))) => rejected.push(reject(e)),
                // Cannot happen after the loop above; never write a row that does not fit.
                Ok((_, Plan::Evolve(_))) => rejected.push(reject(format!(
                    "schema id {id} still needs the table to evolve"
                ))),
                Ok((key, Plan::Fits(parsed))) => {
                    let index = match schemas.iter().position(|(k, _)| *k == key) {
                        Some(index) => index,
                        None => {
                            schemas.push((key, parsed));
                            schemas.len() - 1
                        }
                    };
                    // Protobuf payloads name their message: the next record may differ.
                    if !matches!(*schemas[index].1, Parsed::Protobuf(_)) {
                        last = Some((id, index));
                    }
                    planned.push((r, index, payload));
                }
            }
        }
        let decoders: Vec<Decoder<'_>> = schemas
            .iter()
            .map(|(_, parsed)| Decoder::new(parsed))
            .collect();
        // A record decoded the `Value` way: the row, or the reason in that path's words.
        let decode_row = |index: usize, payload: &[u8]| {
            let id = schemas[index].0.0;
            decoders[index]
                .decode(payload)
                .map_err(|e| format!("value does not decode with schema id {id}: {e}"))
                .and_then(|v| {
                    typed::check_fits(value_arrow.fields(), &v)
                        .map(|()| v)
                        .map_err(|e| format!("value does not fit the table: {e}"))
                })
        };
        // Fast path: every schema of these records is Avro with a program that decodes
        // straight into the columns.
        let programs: Option<Vec<Program<'_, '_>>> = decoders
            .iter()
            .map(|decoder| Program::new(decoder.avro()?, value_arrow.fields()))
            .collect();
        if let (Some(programs), Some(mut columns)) = (programs, Columns::new(value_arrow.fields()))
        {
            let mut written: Vec<&KafkaRecord> = Vec::with_capacity(planned.len());
            let mut bytes = 0usize;
            for &(r, index, payload) in &planned {
                match programs[index].append(payload, &mut columns) {
                    Ok(()) => {
                        bytes += r.size();
                        written.push(r);
                    }
                    Err(e) => rejected.push(Rejected {
                        record: r.clone(),
                        // In the `Value` path's words (`e` if that path takes the record).
                        error: decode_row(index, payload)
                            .err()
                            .unwrap_or_else(|| format!("value does not decode: {e}")),
                    }),
                }
            }
            if !written.is_empty() {
                let arrow_error = |source| TableflowError::Arrow {
                    table: main.ident().to_string(),
                    source,
                };
                let values = columns.finish(value_arrow.fields()).map_err(arrow_error)?;
                let batch = convert::typed_batch_of(main.layout(), &written, values)
                    .map_err(arrow_error)?;
                main.write(batch, bytes).await?;
            }
            return Ok(rejected);
        }
        let mut rows: Vec<(&KafkaRecord, Value)> = Vec::with_capacity(planned.len());
        let mut bytes = 0usize;
        for (r, index, payload) in planned {
            let decoded = decode_row(index, payload);
            match decoded {
                Ok(v) => {
                    bytes += r.size();
                    rows.push((r, v));
                }
                Err(error) => rejected.push(Rejected {
                    record: r.clone(),
                    error,
                }),
            }
        }
        if !rows.is_empty() {
            let batch = convert::typed_batch(main.layout(), &rows).map_err(|source| {
                TableflowError::Arrow {
                    table: main.ident().to_string(),
                    source,
                }
            })?;
            main.write(batch, bytes).await?;
        }
        Ok(rejected)
    }
}
