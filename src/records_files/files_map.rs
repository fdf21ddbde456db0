//! The record's `_files` list read as an ordered map key → entry.

use crate::records::FILES_FIELD;
use serde_json::{Map, Value};

/// `_files` in order. Entries that are not objects with a string `key` are ignored (a body is
/// caller data and may hold anything); a repeated key keeps its first place.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilesMap {
    entries: Vec<(String, Map<String, Value>)>,
}

impl FilesMap {
    pub(crate) fn from_body(body: &Map<String, Value>) -> FilesMap {
        let mut map = FilesMap::default();
        if let Some(Value::Array(items)) = body.get(FILES_FIELD) {
            for item in items {
                if let Value::Object(entry) = item
                    && let Some(Value::String(key)) = entry.get("key")
                    && map.get(key).is_none()
                {
                    map.entries.push((key.clone(), entry.clone()));
                }
            }
        }
        map
    }

    pub(crate) fn keys(&self) -> Vec<&str> {
        self.entries.iter().map(|(k, _)| k.as_str()).collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Map<String, Value>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Map<String, Value>> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets the entry of `key` (its `key` field made to match), keeping its place or
    /// appending it.
    pub(crate) fn set(&mut self, key: &str, mut entry: Map<String, Value>) {
        entry.insert("key".into(), Value::String(key.to_string()));
        match self.get_mut(key) {
            Some(e) => *e = entry,
            None => self.entries.push((key.to_string(), entry)),
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Map<String, Value>> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }
}
