//! Table layouts: the Iceberg schema of a topic's table (mode columns plus the Kafka
//! columns), its partition spec, and the dead-letter table's schema.

use std::sync::Arc;

use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::spec::{
    ListType, NestedField, NestedFieldRef, PrimitiveType, Schema, SchemaRef, StructType, Transform,
    Type, UnboundPartitionSpec,
};

use crate::config::{TableConfig, TableMode};
use crate::typed::FieldIds;

/// Columns every table row has, whatever the mode. JSON schemas may not reuse these names.
pub const KAFKA_COLUMNS: &[&str] = &["key", "headers", "partition", "offset", "timestamp"];

/// Parses `table.partition.by`: `None` for unpartitioned, else (transform, source column).
pub fn parse_partition_by(value: &str) -> Result<Option<(Transform, String)>, String> {
    let value = value.trim();
    if value.is_empty() || value == "none" {
        return Ok(None);
    }
    let (name, rest) = value
        .split_once('(')
        .ok_or_else(|| format!("'{value}' is not none or transform(column)"))?;
    let column = rest
        .strip_suffix(')')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("'{value}' is not none or transform(column)"))?;
    let transform = match name.trim() {
        "hour" => Transform::Hour,
        "day" => Transform::Day,
        "month" => Transform::Month,
        "year" => Transform::Year,
        "identity" => Transform::Identity,
        other => {
            return Err(format!(
                "unknown transform '{other}' (hour, day, month, year, identity)"
            ));
        }
    };
    Ok(Some((transform, column.to_string())))
}

/// The schema, partition spec and Arrow schema of one table.
#[derive(Debug, Clone)]
pub struct TableLayout {
    /// Iceberg schema of a new table.
    pub schema: SchemaRef,
    /// Arrow schema with Iceberg field ids (what the Parquet writer expects).
    pub arrow: ArrowSchemaRef,
    /// Partition spec of a new table.
    pub partition: UnboundPartitionSpec,
    /// Arrow schema of the JSON value columns alone (json mode).
    pub json_arrow: Option<ArrowSchemaRef>,
    /// Arrow schema of the value columns alone (schema mode: every column but
    /// [`KAFKA_STRUCT`]).
    pub typed_arrow: Option<ArrowSchemaRef>,
}

/// The struct column holding a schema-mode row's Kafka fields (key, headers, partition,
/// offset, timestamp): value schemas commonly have fields named like those, so in schema
/// mode they are kept apart. A value schema may not have a top-level field of this name.
pub const KAFKA_STRUCT: &str = "_kafka";

fn headers_type(first_id: i32) -> Type {
    Type::List(ListType::new(
        NestedField::required(
            first_id,
            "element",
            Type::Struct(StructType::new(vec![
                NestedField::required(first_id + 1, "key", Type::Primitive(PrimitiveType::String))
                    .into(),
                NestedField::optional(
                    first_id + 2,
                    "value",
                    Type::Primitive(PrimitiveType::Binary),
                )
                .into(),
            ])),
        )
        .into(),
    ))
}

/// Kafka columns with ids from `next_id` on; returns them and the next free id.
fn kafka_fields(next_id: i32) -> Vec<NestedFieldRef> {
    let id = next_id;
    vec![
        NestedField::optional(id, "key", Type::Primitive(PrimitiveType::Binary)).into(),
        NestedField::optional(id + 1, "headers", headers_type(id + 5)).into(),
        NestedField::required(id + 2, "partition", Type::Primitive(PrimitiveType::Int)).into(),
        NestedField::required(id + 3, "offset", Type::Primitive(PrimitiveType::Long)).into(),
        NestedField::required(
            id + 4,
            "timestamp",
            Type::Primitive(PrimitiveType::Timestamptz),
        )
        .into(),
    ]
}

fn build_schema(fields: Vec<NestedFieldRef>) -> Result<Schema, String> {
    Schema::builder()
        .with_schema_id(0)
        .with_fields(fields)
        .build()
        .map_err(|e| format!("invalid table schema: {e}"))
}

fn to_arrow(schema: &Schema) -> Result<ArrowSchemaRef, String> {
    iceberg::arrow::schema_to_arrow_schema(schema)
        .map(Arc::new)
        .map_err(|e| format!("schema has no Arrow form: {e}"))
}

/// Whether two types have the same names, nullability and types, whatever their field ids
/// (a catalog assigns fresh ids when it creates a table).
pub fn same_shape(a: &Type, b: &Type) -> bool {
    let fields = |x: &NestedField, y: &NestedField| {
        x.name == y.name && x.required == y.required && same_shape(&x.field_type, &y.field_type)
    };
    match (a, b) {
        (Type::Primitive(x), Type::Primitive(y)) => x == y,
        (Type::Struct(x), Type::Struct(y)) => {
            x.fields().len() == y.fields().len()
                && x.fields().iter().zip(y.fields()).all(|(x, y)| fields(x, y))
        }
        (Type::List(x), Type::List(y)) => fields(&x.element_field, &y.element_field),
        (Type::Map(x), Type::Map(y)) => {
            fields(&x.key_field, &y.key_field) && fields(&x.value_field, &y.value_field)
        }
        _ => false,
    }
}

impl TableLayout {
    /// This layout with the field ids of `table_schema` (an existing table of the same
    /// shape), so written files carry the ids readers resolve columns by.
    pub fn with_table_schema(&self, table_schema: SchemaRef) -> Result<TableLayout, String> {
        if !same_shape(
            &Type::Struct(table_schema.as_struct().clone()),
            &Type::Struct(self.schema.as_struct().clone()),
        ) {
            return Err("the table exists with a different schema".into());
        }
        let json_arrow = match &self.json_arrow {
            Some(j) => {
                let user = table_schema.as_struct().fields()[..j.fields().len()].to_vec();
                Some(to_arrow(&build_schema(user)?)?)
            }
            None => None,
        };
        Ok(TableLayout {
            arrow: to_arrow(&table_schema)?,
            schema: table_schema,
            partition: self.partition.clone(),
            json_arrow,
            typed_arrow: None,
        })
    }

    /// The layout of a topic's table.
    pub fn new(cfg: &TableConfig) -> Result<TableLayout, String> {
        let (fields, json_arrow) = match &cfg.mode {
            TableMode::KeyValue => {
                let mut fields = kafka_fields(2);
                fields.insert(
                    1,
                    NestedField::optional(1, "value", Type::Primitive(PrimitiveType::Binary))
                        .into(),
                );
                (fields, None)
            }
            TableMode::Schema { .. } => {
                return Err(
                    "a schema-mode layout comes from the schema registry (TableLayout::typed)"
                        .into(),
                );
            }
            TableMode::Json(user) => {
                let user_schema = build_schema(user.fields().to_vec())?;
                let json_arrow = to_arrow(&user_schema)?;
                let mut fields = user.fields().to_vec();
                fields.extend(kafka_fields(user_schema.highest_field_id() + 1));
                (fields, Some(json_arrow))
            }
        };
        let schema = build_schema(fields)?;
        let mut partition = UnboundPartitionSpec::builder().with_spec_id(0);
        if let Some((transform, column)) = parse_partition_by(&cfg.partition_by)? {
            let source = schema
                .field_by_name(&column)
                .ok_or_else(|| format!("partition column '{column}' is not in the table"))?;
            let name = if transform == Transform::Identity {
                column.clone()
            } else {
                format!("{column}_{transform}")
            };
            partition = partition
                .add_partition_field(source.id, name, transform)
                .map_err(|e| format!("invalid partitioning: {e}"))?;
        }
        let partition = partition.build();
        // Binding checks the transform fits the column type (hour of a string fails here).
        partition
            .clone()
            .bind(Arc::new(schema.clone()))
            .map_err(|e| format!("invalid partitioning '{}': {e}", cfg.partition_by))?;
        Ok(TableLayout {
            arrow: to_arrow(&schema)?,
            schema: Arc::new(schema),
            partition,
            json_arrow,
            typed_arrow: None,
        })
    }

    /// The dead-letter table's layout: raw key, value, headers, partition, offset,
    /// timestamp, and the error.
    pub fn dlq() -> TableLayout {
        let mut fields = kafka_fields(2);
        fields.insert(
            1,
            NestedField::optional(1, "value", Type::Primitive(PrimitiveType::Binary)).into(),
        );
        fields.push(
            NestedField::required(100, "error", Type::Primitive(PrimitiveType::String)).into(),
        );
        // The layout is fixed and valid; failing here is a programming error caught by tests.
        let schema = build_schema(fields).unwrap_or_else(|e| panic!("dlq schema: {e}"));
        let arrow = to_arrow(&schema).unwrap_or_else(|e| panic!("dlq schema: {e}"));
        TableLayout {
            schema: Arc::new(schema),
            arrow,
            partition: UnboundPartitionSpec::builder().with_spec_id(0).build(),
            json_arrow: None,
            typed_arrow: None,
        }
    }

    /// A schema-mode layout: `value` columns (from the registry schema, ids from `ids`)
    /// followed by the [`KAFKA_STRUCT`] column, partitioned by `partition_by` (whose column
    /// may be a value column or a Kafka field such as `_kafka.timestamp`).
    pub fn typed(
        value: Vec<NestedFieldRef>,
        ids: &mut FieldIds,
        partition_by: &str,
    ) -> Result<TableLayout, String> {
        if value.iter().any(|f| f.name == KAFKA_STRUCT) {
            return Err(format!(
                "the value schema has a top-level field named {KAFKA_STRUCT}, which holds the Kafka fields of schema-mode tables"
            ));
        }
        let mut fields = value;
        fields.push(kafka_struct(ids));
        let schema = build_schema(fields)?;
        let partition = partition_spec(&schema, partition_by)?;
        TableLayout::of_typed_schema(Arc::new(schema), partition)
    }

    /// The schema-mode layout of an existing table (its current schema, its ids).
    pub fn of_typed_schema(
        schema: SchemaRef,
        partition: UnboundPartitionSpec,
    ) -> Result<TableLayout, String> {
        let value: Vec<NestedFieldRef> = schema
            .as_struct()
            .fields()
            .iter()
            .filter(|f| f.name != KAFKA_STRUCT)
            .cloned()
            .collect();
        if value.len() + 1 != schema.as_struct().fields().len() {
            return Err(format!(
                "the table has no {KAFKA_STRUCT} column: it was not created in schema mode"
            ));
        }
        let typed_arrow = to_arrow(&build_schema(value)?)?;
        Ok(TableLayout {
            arrow: to_arrow(&schema)?,
            schema,
            partition,
            json_arrow: None,
            typed_arrow: Some(typed_arrow),
        })
    }

    /// The value columns (schema mode).
    pub fn value_fields(&self) -> Vec<NestedFieldRef> {
        self.schema
            .as_struct()
            .fields()
            .iter()
            .filter(|f| f.name != KAFKA_STRUCT)
            .cloned()
            .collect()
    }
}

/// The [`KAFKA_STRUCT`] column with ids from `ids` (stable across evolution).
fn kafka_struct(ids: &mut FieldIds) -> NestedFieldRef {
    let id = ids.id(KAFKA_STRUCT);
    let key = ids.id(&format!("{KAFKA_STRUCT}.key"));
    let headers = ids.id(&format!("{KAFKA_STRUCT}.headers"));
    let element = ids.id(&format!("{KAFKA_STRUCT}.headers.element"));
    let hkey = ids.id(&format!("{KAFKA_STRUCT}.headers.element.key"));
    let hvalue = ids.id(&format!("{KAFKA_STRUCT}.headers.element.value"));
    let partition = ids.id(&format!("{KAFKA_STRUCT}.partition"));
    let offset = ids.id(&format!("{KAFKA_STRUCT}.offset"));
    let timestamp = ids.id(&format!("{KAFKA_STRUCT}.timestamp"));
    let headers_type = Type::List(ListType::new(
        NestedField::required(
            element,
            "element",
            Type::Struct(StructType::new(vec![
                NestedField::required(hkey, "key", Type::Primitive(PrimitiveType::String)).into(),
                NestedField::optional(hvalue, "value", Type::Primitive(PrimitiveType::Binary))
                    .into(),
            ])),
        )
        .into(),
    ));
    NestedField::required(
        id,
        KAFKA_STRUCT,
        Type::Struct(StructType::new(vec![
            NestedField::optional(key, "key", Type::Primitive(PrimitiveType::Binary)).into(),
            NestedField::optional(headers, "headers", headers_type).into(),
            NestedField::required(partition, "partition", Type::Primitive(PrimitiveType::Int))
                .into(),
            NestedField::required(offset, "offset", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::required(
                timestamp,
                "timestamp",
                Type::Primitive(PrimitiveType::Timestamptz),
            )
            .into(),
        ])),
    )
    .into()
}

/// The partition spec of `partition_by` over `schema` (checked by binding it).
fn partition_spec(schema: &Schema, partition_by: &str) -> Result<UnboundPartitionSpec, String> {
    let mut partition = UnboundPartitionSpec::builder().with_spec_id(0);
    if let Some((transform, column)) = parse_partition_by(partition_by)? {
        let source = schema
            .field_by_name(&column)
            .ok_or_else(|| format!("partition column '{column}' is not in the table"))?;
        let name = if transform == Transform::Identity {
            column.replace('.', "_")
        } else {
            format!("{}_{transform}", column.replace('.', "_"))
        };
        partition = partition
            .add_partition_field(source.id, name, transform)
            .map_err(|e| format!("invalid partitioning: {e}"))?;
    }
    let partition = partition.build();
    partition
        .clone()
        .bind(Arc::new(schema.clone()))
        .map_err(|e| format!("invalid partitioning '{partition_by}': {e}"))?;
    Ok(partition)
}

/// How a record schema's columns fit a table's value columns: `Ok(None)` when every one of
/// its columns is in the table with the same type (or one the table's type widens:
/// int → long, float → double), `Ok(Some(merged))` when the table must evolve to hold it
/// (new columns appended, new fields in structs, a column widened), `Err` when a column's
/// type conflicts with the table's. Columns of the table the record lacks stay (null).
pub fn merge_value_fields(
    table: &[NestedFieldRef],
    record: &[NestedFieldRef],
) -> Result<Option<Vec<NestedFieldRef>>, String> {
    let (merged, changed) = merge_struct("", table, record)?;
    Ok(changed.then_some(merged))
}

fn merge_struct(
    path: &str,
    table: &[NestedFieldRef],
    record: &[NestedFieldRef],
) -> Result<(Vec<NestedFieldRef>, bool), String> {
    let mut out: Vec<NestedFieldRef> = Vec::with_capacity(table.len());
    let mut changed = false;
    for t in table {
        match record.iter().find(|r| r.name == t.name) {
            None => out.push(t.clone()),
            Some(r) => {
                let (ty, c) =
                    merge_type(&format!("{path}{}", t.name), &t.field_type, &r.field_type)?;
                changed |= c;
                let mut f = t.as_ref().clone();
                f.field_type = Box::new(ty);
                out.push(f.into());
            }
        }
    }
    for r in record {
        if !table.iter().any(|t| t.name == r.name) {
            let mut f = r.as_ref().clone();
            // An added column holds nothing for the rows already in the table.
            f.required = false;
            out.push(f.into());
            changed = true;
        }
    }
    Ok((out, changed))
}

fn merge_type(path: &str, table: &Type, record: &Type) -> Result<(Type, bool), String> {
    use PrimitiveType as P;
    let conflict = || {
        Err(format!(
            "column {path} is {table} in the table and {record} in the record's schema"
        ))
    };
    match (table, record) {
        (Type::Primitive(t), Type::Primitive(r)) => match (t, r) {
            _ if t == r => Ok((table.clone(), false)),
            (P::Long, P::Int) | (P::Double, P::Float) => Ok((table.clone(), false)),
            (P::Int, P::Long) | (P::Float, P::Double) => Ok((record.clone(), true)),
            (
                P::Decimal {
                    precision: tp,
                    scale: ts,
                },
                P::Decimal {
                    precision: rp,
                    scale: rs,
                },
            ) if ts == rs => {
                if rp > tp {
                    Ok((record.clone(), true))
                } else {
                    Ok((table.clone(), false))
                }
            }
            _ => conflict(),
        },
        (Type::Struct(t), Type::Struct(r)) => {
            let (fields, changed) = merge_struct(&format!("{path}."), t.fields(), r.fields())?;
            Ok((Type::Struct(StructType::new(fields)), changed))
        }
        (Type::List(t), Type::List(r)) => {
            let (ty, changed) = merge_type(
                &format!("{path}.element"),
                &t.element_field.field_type,
                &r.element_field.field_type,
            )?;
            let mut element = t.element_field.as_ref().clone();
            element.field_type = Box::new(ty);
            Ok((Type::List(ListType::new(element.into())), changed))
        }
        (Type::Map(t), Type::Map(r)) => {
            let (k, kc) = merge_type(
                &format!("{path}.key"),
                &t.key_field.field_type,
                &r.key_field.field_type,
            )?;
            if kc {
                return conflict();
            }
            let (v, vc) = merge_type(
                &format!("{path}.value"),
                &t.value_field.field_type,
                &r.value_field.field_type,
            )?;
            let mut key = t.key_field.as_ref().clone();
            key.field_type = Box::new(k);
            let mut value = t.value_field.as_ref().clone();
            value.field_type = Box::new(v);
            Ok((
                Type::Map(iceberg::spec::MapType::new(key.into(), value.into())),
                vc,
            ))
        }
        _ => conflict(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: TableMode, partition_by: &str) -> TableConfig {
        TableConfig {
            mode,
            partition_by: partition_by.into(),
            commit_interval_ms: 1000,
            namespace: "default".into(),
            name: "t".into(),
            maintenance: Default::default(),
            retention_hold_ms: 0,
        }
    }

    #[test]
    fn key_value_layout() {
        let l = TableLayout::new(&cfg(TableMode::KeyValue, "hour(timestamp)")).unwrap();
        let names: Vec<_> = l.arrow.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(
            names,
            [
                "key",
                "value",
                "headers",
                "partition",
                "offset",
                "timestamp"
            ]
        );
        assert_eq!(l.partition.fields().len(), 1);
    }

    fn field(id: i32, name: &str, ty: Type) -> NestedFieldRef {
        NestedField::optional(id, name, ty).into()
    }

    fn prim(p: PrimitiveType) -> Type {
        Type::Primitive(p)
    }

    #[test]
    fn typed_layout_keeps_kafka_fields_apart_and_ids_across_evolution() {
        let mut ids = FieldIds::new(None, 1);
        let value = vec![
            field(ids.id("id"), "id", prim(PrimitiveType::Long)),
            field(
                ids.id("timestamp"),
                "timestamp",
                prim(PrimitiveType::String),
            ),
        ];
        let l = TableLayout::typed(value, &mut ids, "day(_kafka.timestamp)").unwrap();
        let names: Vec<_> = l.arrow.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["id", "timestamp", KAFKA_STRUCT]);
        assert_eq!(l.typed_arrow.as_ref().unwrap().fields().len(), 2);
        assert_eq!(l.partition.fields().len(), 1);
        assert!(TableLayout::typed(vec![], &mut FieldIds::new(None, 1), "hour(nope)").is_err());
        let clash = vec![field(1, KAFKA_STRUCT, prim(PrimitiveType::Int))];
        assert!(TableLayout::typed(clash, &mut FieldIds::new(None, 1), "none").is_err());

        // Evolution: a new column gets a fresh id, existing ones keep theirs.
        let mut again = FieldIds::new(Some(&l.schema), l.schema.highest_field_id() + 1);
        let record = vec![
            field(again.id("id"), "id", prim(PrimitiveType::Long)),
            field(again.id("channel"), "channel", prim(PrimitiveType::String)),
        ];
        let merged = merge_value_fields(&l.value_fields(), &record)
            .unwrap()
            .unwrap();
        let evolved = TableLayout::typed(merged, &mut again, "none").unwrap();
        let id_of = |l: &TableLayout, n: &str| l.schema.field_by_name(n).unwrap().id;
        assert_eq!(id_of(&evolved, "id"), id_of(&l, "id"));
        assert_eq!(id_of(&evolved, "_kafka.offset"), id_of(&l, "_kafka.offset"));
        assert!(id_of(&evolved, "channel") > l.schema.highest_field_id());
        let of = TableLayout::of_typed_schema(evolved.schema.clone(), evolved.partition.clone())
            .unwrap();
        assert_eq!(of.value_fields().len(), 3);
    }

    #[test]
    fn merging_widens_adds_and_refuses_conflicts() {
        let table = vec![
            field(1, "n", prim(PrimitiveType::Int)),
            field(
                2,
                "s",
                Type::Struct(StructType::new(vec![field(
                    3,
                    "a",
                    prim(PrimitiveType::String),
                )])),
            ),
        ];
        // A subset with the same types fits as is; a narrower type fits the wider column.
        assert_eq!(merge_value_fields(&table, &table[..1]).unwrap(), None);
        let long = vec![field(1, "n", prim(PrimitiveType::Long))];
        let widened = merge_value_fields(&table, &long).unwrap().unwrap();
        assert_eq!(*widened[0].field_type, prim(PrimitiveType::Long));
        assert_eq!(merge_value_fields(&widened, &table[..1]).unwrap(), None);
        // A new nested field evolves the struct.
        let nested = vec![field(
            2,
            "s",
            Type::Struct(StructType::new(vec![
                field(3, "a", prim(PrimitiveType::String)),
                field(9, "b", prim(PrimitiveType::Date)),
            ])),
        )];
        let merged = merge_value_fields(&table, &nested).unwrap().unwrap();
        let Type::Struct(st) = merged[1].field_type.as_ref() else {
            panic!("not a struct")
        };
        assert_eq!(st.fields().len(), 2);
        // A changed type is a conflict that names the column.
        let conflict = vec![field(1, "n", prim(PrimitiveType::String))];
        assert!(
            merge_value_fields(&table, &conflict)
                .unwrap_err()
                .contains("column n")
        );
    }

    #[test]
    fn json_layout_and_partition_checks() {
        let st: StructType = serde_json::from_str(
            r#"{"type":"struct","fields":[{"id":1,"name":"id","type":"long","required":true},
            {"id":2,"name":"tags","type":{"type":"list","element-id":3,"element":"string","element-required":false},"required":false}]}"#,
        )
        .unwrap();
        let l = TableLayout::new(&cfg(TableMode::Json(st.clone()), "identity(id)")).unwrap();
        assert_eq!(l.schema.field_by_name("key").unwrap().id, 4);
        assert!(TableLayout::new(&cfg(TableMode::Json(st.clone()), "hour(tags)")).is_err());
        assert!(TableLayout::new(&cfg(TableMode::Json(st), "day(missing)")).is_err());
        TableLayout::dlq();
    }
}
