//! Value encoding: serde structs as bincode 2 (standard configuration, varint integers).

use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a row.
pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(v, config())
        .map_err(|e| Error::corrupt(format!("cannot encode row: {e}")))
}

/// Decodes a row; a row that does not decode is reported as corruption of `what`.
pub(crate) fn dec<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    match bincode::serde::decode_from_slice(bytes, config()) {
        Ok((v, used)) if used == bytes.len() => Ok(v),
        Ok((_, used)) => Err(Error::corrupt(format!(
            "{what}: {} trailing bytes after the row",
            bytes.len() - used
        ))),
        Err(e) => Err(Error::corrupt(format!("{what}: row does not decode: {e}"))),
    }
}
