//! Field ids that survive schema evolution.
//!
//! A field is known by its *path*: the names from the top-level column down, joined with
//! `.`. A list's element is `<list>.element`, a map's key and value `<map>.key` and
//! `<map>.value` (the names Iceberg gives those fields). So `ship.city` is the field `city`
//! of the struct column `ship`, `tags.element` the element of the list column `tags`, and
//! `attrs.value.x` the field `x` of the struct values of the map column `attrs`. A name
//! that itself contains a `.` makes paths ambiguous (`a.b` the column or `b` in `a`): the
//! first field to claim a path gets its id, a second one a fresh id.

use std::collections::{HashMap, HashSet};

use iceberg::spec::{NestedFieldRef, Schema, Type};

/// Field ids of a table schema that evolves: a field keeps its id by path, new fields get
/// fresh ids above every id ever used.
///
/// A path is the field names from the top-level column down, joined with `.`; a list's
/// element is `<list>.element`, a map's key and value `<map>.key` and `<map>.value`. So
/// `ship.city` is the field `city` of the struct column `ship`, `tags.element` the element of
/// the list `tags`, `attrs.value.x` the field `x` of the struct values of the map `attrs`.
/// A name containing `.` makes paths ambiguous: the first field to claim a path gets its id,
/// another one a fresh id.
#[derive(Debug, Clone)]
pub struct FieldIds {
    /// Ids of the existing schema by path.
    existing: HashMap<String, i32>,
    /// Ids handed out so far (an id is never handed out for two paths).
    used: HashSet<i32>,
    /// The next fresh id.
    next: i32,
    /// The highest id handed out or reused.
    highest: i32,
}

impl FieldIds {
    /// Ids of `existing` (a table's current Iceberg schema) reused by path; fresh ids start
    /// above `existing.highest_field_id()` (or at `first_free` when there is no existing
    /// schema). With an existing schema, fresh ids also never start below `first_free`: pass
    /// the table metadata's `last-column-id + 1` there so that the ids of dropped columns are
    /// not reused either.
    pub fn new(existing: Option<&Schema>, first_free: i32) -> FieldIds {
        let mut paths = HashMap::new();
        let next = match existing {
            Some(schema) => {
                for field in schema.as_struct().fields() {
                    collect(field, &mut String::new(), &mut paths);
                }
                schema
                    .highest_field_id()
                    .saturating_add(1)
                    .max(first_free)
                    .max(1)
            }
            None => first_free.max(1),
        };
        FieldIds {
            existing: paths,
            used: HashSet::new(),
            next,
            highest: 0,
        }
    }

    /// The id of the field at `path` (existing, or the next fresh one).
    pub fn id(&mut self, path: &str) -> i32 {
        let id = match self.existing.get(path) {
            Some(&id) if !self.used.contains(&id) => id,
            _ => {
                let id = self.next;
                self.next = self.next.saturating_add(1);
                id
            }
        };
        self.used.insert(id);
        self.highest = self.highest.max(id);
        id
    }

    /// The highest id handed out or reused so far (0 before the first).
    pub fn highest(&self) -> i32 {
        self.highest
    }

    /// The id an existing field at `path` has, without handing anything out.
    pub fn existing(&self, path: &str) -> Option<i32> {
        self.existing.get(path).copied()
    }
}

/// `parent.name` (or `name` at the top).
pub(crate) fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        let mut path = String::with_capacity(parent.len() + 1 + name.len());
        path.push_str(parent);
        path.push('.');
        path.push_str(name);
        path
    }
}

fn collect(field: &NestedFieldRef, prefix: &mut String, out: &mut HashMap<String, i32>) {
    let len = prefix.len();
    if !prefix.is_empty() {
        prefix.push('.');
    }
    prefix.push_str(&field.name);
    out.entry(prefix.clone()).or_insert(field.id);
    collect_type(&field.field_type, prefix, out);
    prefix.truncate(len);
}

fn collect_type(ty: &Type, prefix: &mut String, out: &mut HashMap<String, i32>) {
    let mut nested = |name: &str, field: &NestedFieldRef, prefix: &mut String| {
        let len = prefix.len();
        prefix.push('.');
        prefix.push_str(name);
        out.entry(prefix.clone()).or_insert(field.id);
        collect_type(&field.field_type, prefix, out);
        prefix.truncate(len);
    };
    match ty {
        Type::Primitive(_) => {}
        Type::Struct(s) => {
            for field in s.fields() {
                nested(&field.name, field, prefix);
            }
        }
        Type::List(l) => nested("element", &l.element_field, prefix),
        Type::Map(m) => {
            nested("key", &m.key_field, prefix);
            nested("value", &m.value_field, prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{ListType, MapType, NestedField, PrimitiveType, StructType};

    fn schema() -> Schema {
        let city = NestedField::optional(3, "city", Type::Primitive(PrimitiveType::String));
        Schema::builder()
            .with_fields(vec![
                NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "ship", Type::Struct(StructType::new(vec![city.into()])))
                    .into(),
                NestedField::optional(
                    4,
                    "tags",
                    Type::List(ListType::new(
                        NestedField::list_element(5, Type::Primitive(PrimitiveType::String), false)
                            .into(),
                    )),
                )
                .into(),
                NestedField::optional(
                    6,
                    "attrs",
                    Type::Map(MapType::new(
                        NestedField::map_key_element(7, Type::Primitive(PrimitiveType::String))
                            .into(),
                        NestedField::map_value_element(
                            9,
                            Type::Primitive(PrimitiveType::Int),
                            false,
                        )
                        .into(),
                    )),
                )
                .into(),
            ])
            .build()
            .unwrap()
    }

    #[test]
    fn existing_paths_keep_their_ids_and_new_ones_get_fresh_ids() {
        let s = schema();
        let mut ids = FieldIds::new(Some(&s), 1);
        assert_eq!(ids.existing("ship.city"), Some(3));
        assert_eq!(ids.id("ship"), 2);
        assert_eq!(ids.id("ship.zip"), 10);
        assert_eq!(ids.id("ship.city"), 3);
        assert_eq!(ids.id("tags.element"), 5);
        assert_eq!(ids.id("attrs.key"), 7);
        assert_eq!(ids.id("attrs.value"), 9);
        assert_eq!(ids.id("new"), 11);
        assert_eq!(ids.highest(), 11);
        // The same path twice in one schema: the second one is a different field.
        assert_eq!(ids.id("id"), 1);
        assert_eq!(ids.id("id"), 12);

        // first_free above the schema's highest id (dropped columns) wins.
        let mut ids = FieldIds::new(Some(&s), 50);
        assert_eq!(ids.id("x"), 50);
        assert_eq!(ids.id("id"), 1);
        assert_eq!(ids.highest(), 50);

        let mut ids = FieldIds::new(None, 7);
        assert_eq!(ids.highest(), 0);
        assert_eq!(ids.id("a"), 7);
        assert_eq!(ids.id("b"), 8);
        assert_eq!(ids.highest(), 8);
    }
}
