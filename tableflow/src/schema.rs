//! Table layouts: the Iceberg schema of a topic's table (mode columns plus the Kafka
//! columns), its partition spec, and the dead-letter table's schema.

use std::sync::Arc;

use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::spec::{
    ListType, NestedField, NestedFieldRef, PrimitiveType, Schema, SchemaRef, StructType, Transform,
    Type, UnboundPartitionSpec,
};

use crate::config::{TableConfig, TableMode};

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
}

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
        }
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
