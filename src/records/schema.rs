//! JSON Schema validation of record bodies (Invenio-Records §1.3), offline: a body's
//! `$schema` must name a schema registered in the store, and `$ref`s may point at any other
//! registered schema, never at the network.

use crate::error::{Error, Result, SchemaViolation, shorten};
use crate::storage::{Snapshot, View, WriteTx, with_view};
use parking_lot::Mutex;
use redb::ReadableTable;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Most violations one error lists.
#[cfg(feature = "schema")]
const MAX_VIOLATIONS: usize = 100;

/// Most compiled schemas the cache keeps; past it, it starts over.
const CACHED_SCHEMAS: usize = 64;

/// Compiled validators, so a record's validation does not parse every registered schema and
/// compile its own anew. A validator is a pure function of the schema's URL and the documents
/// of all registered schemas (any of them may be `$ref`'d), so it is cached under a blake3 of
/// exactly those bytes as a transaction sees them: a schema registered, replaced or removed in
/// a transaction (committed or not) gives another key, and nothing ever needs invalidating.
#[derive(Default)]
pub(crate) struct SchemaCache(Mutex<HashMap<[u8; 32], Arc<Validator>>>);

/// A compiled schema.
#[cfg(feature = "schema")]
type Validator = jsonschema::Validator;
/// Without the `schema` feature no schema compiles, so there is never a validator.
#[cfg(not(feature = "schema"))]
enum Validator {}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("validators", &self.0.lock().len())
            .finish()
    }
}

/// The body field naming the schema a record must match.
pub const SCHEMA_FIELD: &str = "$schema";

impl WriteTx<'_> {
    /// Registers (or replaces) the JSON Schema published under `url`. Record bodies whose
    /// `$schema` is `url` are validated against it from now on. The schema must compile
    /// (`InvalidSchema` otherwise); `$ref`s may only name schemas already registered.
    pub fn register_schema(&mut self, url: &str, schema: &Value) -> Result<()> {
        if url.is_empty() || url.contains('\0') {
            return Err(Error::InvalidSchema {
                schema: shorten(url),
                detail: "the URL is empty or contains a NUL character".into(),
            });
        }
        super::check_depth(schema, || format!("schema {:?}", shorten(url)))?;
        // The other schemas as they will be: one that refers to this URL must find the new
        // document there, not miss it (a replaced schema others `$ref` stays replaceable).
        let mut others: Vec<(String, Value)> = all_schemas(&self.t)?
            .into_iter()
            .filter(|(u, _)| u != url)
            .collect();
        others.push((url.to_string(), schema.clone()));
        compile(url, schema, &others)
            .and_then(|_| ref_loop(url, schema, &others))
            .map_err(|detail| Error::InvalidSchema {
                schema: shorten(url),
                detail,
            })?;
        let text = serde_json::to_vec(schema).map_err(|e| Error::InvalidSchema {
            schema: shorten(url),
            detail: e.to_string(),
        })?;
        self.t.schemas.write()?.insert(url, text.as_slice())?;
        Ok(())
    }

    /// Forgets a schema; returns whether it was registered. Records naming it can no longer
    /// be committed until it is registered again.
    pub fn remove_schema(&mut self, url: &str) -> Result<bool> {
        Ok(self.t.schemas.write()?.remove(url)?.is_some())
    }
}

pub(crate) fn schema_doc<V: View>(v: &V, url: &str) -> Result<Option<Value>> {
    match v.schemas()?.get(url)? {
        Some(g) => serde_json::from_slice(g.value())
            .map(Some)
            .map_err(|e| Error::corrupt(format!("schema {url:?} is not JSON: {e}"))),
        None => Ok(None),
    }
}

pub(crate) fn all_schemas<V: View>(v: &V) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for e in v.schemas()?.iter()? {
        let (k, val) = e?;
        let doc: Value = serde_json::from_slice(val.value())
            .map_err(|e| Error::corrupt(format!("schema {:?} is not JSON: {e}", k.value())))?;
        out.push((k.value().to_string(), doc));
    }
    Ok(out)
}

/// Refuses a schema with a `$ref` that never reaches a schema of its own: one that leads,
/// through documents made of nothing but `$ref`s, back to where it started (`{"$ref": "loop"}`
/// registered as `loop`). The validator compiles such a chain but it constrains nothing, so
/// every body would pass. Follows the chain from every `$ref` in the schema, through the
/// registered documents (`others`, the schema itself among them); a reference it cannot
/// follow was already refused by compiling.
fn ref_loop(
    url: &str,
    schema: &Value,
    others: &[(String, Value)],
) -> std::result::Result<(), String> {
    let doc_of = |u: &str| others.iter().find(|(d, _)| d == u).map(|(_, v)| v);
    let mut pending = vec![(url.to_string(), schema)];
    while let Some((base, v)) = pending.pop() {
        match v {
            Value::Array(items) => pending.extend(items.iter().map(|i| (base.clone(), i))),
            Value::Object(map) => {
                pending.extend(map.values().map(|i| (base.clone(), i)));
                let Some(Value::String(first)) = map.get("$ref") else {
                    continue;
                };
                // Follow the chain while each step is a document of only a `$ref`.
                let mut seen = std::collections::HashSet::new();
                let (mut at, mut reference) = (base.clone(), first.clone());
                loop {
                    let (doc_url, pointer) = resolve_ref(&at, &reference);
                    if !seen.insert((doc_url.clone(), pointer.clone())) {
                        return Err(format!(
                            "the reference {first:?} leads back to itself through $refs alone"
                        ));
                    }
                    let target = doc_of(&doc_url).and_then(|d| d.pointer(&pointer));
                    let next = match target {
                        Some(Value::Object(t)) if t.len() == 1 => t.get("$ref"),
                        _ => None,
                    };
                    match next {
                        Some(Value::String(r)) => (at, reference) = (doc_url, r.clone()),
                        _ => break,
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The document URL and JSON pointer a `$ref` names, relative to the document at `base`.
fn resolve_ref(base: &str, reference: &str) -> (String, String) {
    let (doc, pointer) = reference.split_once('#').unwrap_or((reference, ""));
    let doc_url = if doc.is_empty() {
        base.to_string()
    } else if doc.contains("://") {
        doc.to_string()
    } else {
        match base.rfind('/') {
            Some(cut) => format!("{}{doc}", &base[..=cut]),
            None => doc.to_string(),
        }
    };
    (doc_url, pointer.to_string())
}

#[cfg(not(feature = "schema"))]
fn compile(
    _url: &str,
    _schema: &Value,
    _others: &[(String, Value)],
) -> std::result::Result<Validator, String> {
    Err("this build has no JSON Schema validation (the `schema` feature is off)".into())
}

#[cfg(not(feature = "schema"))]
fn violations(validator: &Validator, _instance: &Value) -> Vec<SchemaViolation> {
    match *validator {}
}

#[cfg(feature = "schema")]
fn violations(validator: &Validator, instance: &Value) -> Vec<SchemaViolation> {
    validator
        .iter_errors(instance)
        .take(MAX_VIOLATIONS)
        .map(|e| SchemaViolation {
            pointer: e.instance_path().as_str().to_string(),
            message: e.to_string(),
        })
        .collect()
}

#[cfg(feature = "schema")]
fn compile(
    url: &str,
    schema: &Value,
    others: &[(String, Value)],
) -> std::result::Result<Validator, String> {
    let mut builder = jsonschema::Registry::new();
    for (u, doc) in others {
        builder = builder.add(u, doc).map_err(|e| e.to_string())?;
    }
    let registry = builder.prepare().map_err(|e| e.to_string())?;
    jsonschema::options()
        .offline()
        .with_base_uri(url)
        .with_registry(&registry)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// Validates `body` against the schema its `$schema` names; a body without `$schema` (or
/// with `null`) is not validated.
pub(crate) fn validate_body<S: Snapshot + ?Sized>(s: &S, body: &Map<String, Value>) -> Result<()> {
    let url = match body.get(SCHEMA_FIELD) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(u)) => u.as_str(),
        Some(other) => {
            return Err(Error::SchemaNotFound {
                schema: shorten(&other.to_string()),
            });
        }
    };
    let validator = validator_for(s, url)?;
    let instance = Value::Object(body.clone());
    let errors = violations(&validator, &instance);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::SchemaValidation {
            schema: shorten(url),
            errors,
        })
    }
}

/// The compiled validator of the schema registered under `url`, from the cache when the
/// registered schemas are byte for byte what they were when it was compiled.
fn validator_for<S: Snapshot + ?Sized>(s: &S, url: &str) -> Result<Arc<Validator>> {
    // Every registered schema's URL and bytes, in key order, as this transaction sees them.
    let (key, found) = with_view!(s, |v| {
        let mut h = blake3::Hasher::new();
        h.update(&(url.len() as u64).to_le_bytes());
        h.update(url.as_bytes());
        let mut found = false;
        for e in v.schemas()?.iter()? {
            let (k, val) = e?;
            found |= k.value() == url;
            let (k, val) = (k.value().as_bytes(), val.value());
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(k);
            h.update(&(val.len() as u64).to_le_bytes());
            h.update(val);
        }
        Ok::<_, Error>((*h.finalize().as_bytes(), found))
    })?;
    if !found {
        return Err(Error::SchemaNotFound {
            schema: shorten(url),
        });
    }
    let cache = s.config().extensions.get::<SchemaCache>();
    let cache = &cache.0;
    if let Some(v) = cache.lock().get(&key) {
        return Ok(Arc::clone(v));
    }
    // A miss: parse every registered schema once. All of them, the root included, are what
    // its `$ref`s may name, as at registration.
    let all = with_view!(s, |v| all_schemas(v))?;
    let schema = all
        .iter()
        .find(|(u, _)| u == url)
        .map(|(_, doc)| doc)
        .ok_or_else(|| Error::SchemaNotFound {
            schema: shorten(url),
        })?;
    let validator = compile(url, schema, &all).map_err(|detail| Error::InvalidSchema {
        schema: shorten(url),
        detail,
    })?;
    let validator = Arc::new(validator);
    let mut cache = cache.lock();
    if cache.len() >= CACHED_SCHEMAS {
        cache.clear();
    }
    cache.insert(key, Arc::clone(&validator));
    Ok(validator)
}
