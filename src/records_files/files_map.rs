//! The record's `_files` list read as an ordered map key → entry.

use crate::records::FILES_FIELD;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// `_files` in order. Entries that are not objects with a string `key` are ignored (a body is
/// caller data and may hold anything); a repeated key keeps its first place.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilesMap {
    entries: Vec<(String, Map<String, Value>)>,
    // key → position in `entries`, so lookups stay O(1) with thousands of files.
    index: HashMap<String, usize>,
}

impl FilesMap {
    pub(crate) fn from_body(body: &Map<String, Value>) -> FilesMap {
        let mut map = FilesMap::default();
        if let Some(Value::Array(items)) = body.get(FILES_FIELD) {
            for item in items {
                if let Value::Object(entry) = item
                    && let Some(Value::String(key)) = entry.get("key")
                    && !map.index.contains_key(key)
                {
                    map.index.insert(key.clone(), map.entries.len());
                    map.entries.push((key.clone(), entry.clone()));
                }
            }
        }
        map
    }

    /// Each key of a body's `_files` with its place in the list and its entry, borrowed and
    /// sorted by key, one per key (the first entry of a repeated key wins): what a read-only
    /// view merges with the bucket's heads, which come in key order too.
    pub(crate) fn by_key(body: &Map<String, Value>) -> Vec<(&str, usize, &Map<String, Value>)> {
        let mut out = Vec::new();
        if let Some(Value::Array(items)) = body.get(FILES_FIELD) {
            out.reserve(items.len());
            for (at, item) in items.iter().enumerate() {
                if let Value::Object(entry) = item
                    && let Some(Value::String(key)) = entry.get("key")
                {
                    out.push((key.as_str(), at, entry));
                }
            }
        }
        // `_files` is usually in key order already, without repeats: then there is nothing to do.
        if !out.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable, so the first entry of a key stays first.
            out.sort_by(|a, b| a.0.cmp(b.0));
            out.dedup_by(|later, first| later.0 == first.0);
        }
        out
    }

    /// The entry of one key, read straight from a body without building the whole map.
    pub(crate) fn entry_in(body: &Map<String, Value>, key: &str) -> Option<Map<String, Value>> {
        match body.get(FILES_FIELD) {
            Some(Value::Array(items)) => items.iter().find_map(|item| match item {
                Value::Object(entry) if entry.get("key").and_then(Value::as_str) == Some(key) => {
                    Some(entry.clone())
                }
                _ => None,
            }),
            _ => None,
        }
    }

    pub(crate) fn keys(&self) -> Vec<&str> {
        self.entries.iter().map(|(k, _)| k.as_str()).collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Map<String, Value>> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Map<String, Value>> {
        self.index.get(key).map(|&i| &mut self.entries[i].1)
    }

    /// Sets the entry of `key` (its `key` field made to match), keeping its place or
    /// appending it.
    pub(crate) fn set(&mut self, key: &str, mut entry: Map<String, Value>) {
        entry.insert("key".into(), Value::String(key.to_string()));
        match self.get_mut(key) {
            Some(e) => *e = entry,
            None => {
                self.index.insert(key.to_string(), self.entries.len());
                self.entries.push((key.to_string(), entry));
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Map<String, Value>> {
        let i = self.index.remove(key)?;
        let (_, entry) = self.entries.remove(i);
        for pos in self.index.values_mut() {
            if *pos > i {
                *pos -= 1;
            }
        }
        Some(entry)
    }
}
