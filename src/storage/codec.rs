//! Value encoding: serde structs as bincode 2 (standard configuration, varint integers).

use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// A bincode writer into a `Vec` that starts with room for a typical row, so encoding a row
/// costs one allocation instead of a growth step per power of two (bincode's own serde
/// `encode_to_vec` starts from an empty `Vec`).
struct RowWriter(Vec<u8>);

impl bincode::enc::write::Writer for RowWriter {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Room reserved up front for an encoded row; most rows (ids, sizes, timestamps, a short
/// string) fit, and a larger one grows as usual.
const ROW_CAPACITY: usize = 256;

/// Encodes a row.
pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut w = RowWriter(Vec::with_capacity(ROW_CAPACITY));
    bincode::serde::encode_into_writer(v, &mut w, config())
        .map_err(|e| Error::corrupt(format!("cannot encode row: {e}")))?;
    Ok(w.0)
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

/// Decodes a row at the start of `bytes`, which may go on with other data (a file row is
/// followed by its inline content); returns the row and how many bytes it took.
pub(crate) fn dec_head<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<(T, usize)> {
    bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| Error::corrupt(format!("{what}: row does not decode: {e}")))
}

/// Serde adapter for `Option<Vec<u8>>` row fields: the bytes go through serde as one byte
/// string instead of a sequence of `u8`s. bincode writes both the same way (a length, then the
/// raw bytes), so the stored format is unchanged; only the per-byte calls go.
pub(crate) mod opt_bytes {
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::{Serialize, Serializer};
    use std::fmt;

    struct Raw<'a>(&'a [u8]);

    impl Serialize for Raw<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_some(&Raw(bytes)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        d.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Vec<u8>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("optional bytes")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_byte_buf(BytesVisitor).map(Some)
        }
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// Serde adapter for a 32-byte digest written as a byte string (its length, then the bytes):
/// it decodes in one copy rather than as 32 separate elements.
pub(crate) mod digest_bytes {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub(crate) fn serialize<S: Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(d)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        struct Digest;
        impl Visitor<'_> for Digest {
            type Value = [u8; 32];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 32-byte digest")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<[u8; 32], E> {
                v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(Digest)
    }
}

#[cfg(test)]
mod tests {
    use super::{dec, enc};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        a: u64,
        json: Option<Vec<u8>>,
        z: u8,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Adapted {
        a: u64,
        #[serde(with = "super::opt_bytes")]
        json: Option<Vec<u8>>,
        z: u8,
    }

    #[test]
    fn byte_fields_encode_exactly_as_a_sequence_of_u8_and_round_trip() {
        for json in [
            None,
            Some(vec![]),
            Some(b"{\"a\":1}".to_vec()),
            Some(vec![7; 300]),
        ] {
            let plain = Plain {
                a: 70_000,
                json: json.clone(),
                z: 9,
            };
            let adapted = Adapted {
                a: 70_000,
                json,
                z: 9,
            };
            let bytes = enc(&adapted).unwrap();
            assert_eq!(bytes, enc(&plain).unwrap());
            assert_eq!(dec::<Adapted>(&bytes, "t").unwrap(), adapted);
            assert_eq!(dec::<Plain>(&bytes, "t").unwrap(), plain);
        }
    }
}
