//! Where a file's content lives, and the one interface every place offers: the store file
//! (chunks or inline bytes, [`super::embedded`]) or an object of a location's backend
//! ([`super::remote`]).
//!
//! A [`Place`] is found from the file's rows (`remote_files` names a location; no row means
//! the store file). What a place does is a `match` over this enum, never a trait object, so the
//! embedded path (the hot one) stays monomorphic: no dynamic call and no allocation is added
//! to it.
//!
//! - reading: [`Place::open`] gives the file's [`Spans`], which `FileReader` asks for the
//!   bytes at an offset;
//! - releasing: [`Place::release`] gives back what a file held at its place once its last
//!   reference goes (or its content moves away), inside that transaction: the references of
//!   its embedded chunks, or its use of an object (the object's last user queues its delete
//!   for after the commit).
//!
//! Writing is not behind `Place` yet: puts and multipart completion choose between staging
//! chunks and `remote::upload_stream` themselves (docs/S3.md, *The content trait*).

use super::Hash;
use super::embedded::EmbeddedSpans;
use super::remote_read::RemoteSpans;
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::{Config, WTables};
use redb::{ReadOnlyTable, ReadTransaction};

/// Where a file's content lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the store file: chunks named in `file_chunks`, or inline after the file's row.
    Embedded,
    /// An object of the backend of the location of this name.
    Remote(String),
}

impl Place {
    /// The place of `file`'s content as of the snapshot `txn` (a store of format 4 opened
    /// read-only has no `remote_files` table: all of its content is embedded).
    #[inline]
    pub(crate) fn of_file(txn: &ReadTransaction, file: FileId) -> Result<Place> {
        match txn.open_table(crate::storage::defs::remote_files) {
            Ok(t) => Ok(match t.get(file.raw())? {
                Some(g) => Place::Remote(g.value().to_string()),
                None => Place::Embedded,
            }),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(Place::Embedded),
            Err(e) => Err(e.into()),
        }
    }

    /// The place of `file`'s content, inside a write transaction.
    pub(crate) fn of_file_in(t: &WTables<'_>, file: FileId) -> Result<Place> {
        Ok(match super::remote::file_location(t, file)? {
            Some(location) => Place::Remote(location),
            None => Place::Embedded,
        })
    }

    /// The location name, for content in another location.
    pub(crate) fn location(&self) -> Option<&str> {
        match self {
            Place::Embedded => None,
            Place::Remote(name) => Some(name),
        }
    }

    /// Opens the content of `file` for reading from the snapshot `txn` (`files`: its `files`
    /// table, already open to find the file's row).
    #[inline]
    pub(crate) fn open(
        self,
        txn: &ReadTransaction,
        cfg: &Config,
        file: &Stored,
        files: ReadOnlyTable<u128, &'static [u8]>,
    ) -> Result<Spans> {
        match self {
            Place::Embedded => Ok(Spans::Embedded(EmbeddedSpans::open(txn, cfg, file, files)?)),
            Place::Remote(location) => {
                Ok(Spans::Remote(RemoteSpans::open(txn, cfg, file, location)?))
            }
        }
    }

    /// Gives back what `file` (of blake3 `blake3`) held at this place, once its `file_chunks`
    /// rows (`hashes`, see [`super::take_chunk_rows`]) are gone: the references of embedded
    /// chunks, or the file's use of its object (whose delete, for the last user, follows the
    /// commit). Inline content goes with the file's row, which the caller removes or rewrites.
    pub(crate) fn release(
        &self,
        t: &mut WTables<'_>,
        file: FileId,
        blake3: &Hash,
        hashes: &[Hash],
    ) -> Result<()> {
        match self {
            Place::Embedded => {
                for h in hashes {
                    super::release_chunk(t, h)?;
                }
                Ok(())
            }
            Place::Remote(location) => super::remote::detach(t, file, location, blake3),
        }
    }
}

/// What opening a file's content needs to know of it, from its row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    pub file: FileId,
    pub size: u64,
    /// The blake3 of the whole content (inline content is checked against it).
    pub blake3: Hash,
    /// Bytes per chunk hash in `file_chunks`.
    pub chunk_size: u32,
    /// Whether the content is stored inline, after the file's row.
    pub inline: bool,
}

/// A file's content opened for reading: the bytes at any offset, checked before they are
/// returned. Dispatch is a `match` (see the module's documentation).
// The embedded variant (its open tables) is the larger and the common one: boxing it would add
// an allocation to every open of a reader of the store file, which this enum exists to avoid.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Spans {
    /// Chunks or inline bytes in the store file.
    Embedded(EmbeddedSpans),
    /// An object in another location, fetched by ranged requests.
    Remote(RemoteSpans),
}

impl Spans {
    /// Copies bytes from offset `pos` (< the file's size) into `out` (not empty): as many as
    /// `out` holds or the loaded span has left, at least one. Returns how many.
    #[inline]
    pub(crate) fn read_at(&mut self, pos: u64, out: &mut [u8]) -> Result<usize> {
        match self {
            Spans::Embedded(s) => s.read_at(pos, out),
            Spans::Remote(s) => s.read_at(pos, out),
        }
    }
}

/// The offset and hash of the chunk of `file` that holds byte `pos`, from its `file_chunks`
/// rows.
#[inline]
pub(crate) fn chunk_at(
    file_chunks: &redb::ReadOnlyTable<(u128, u64), Hash>,
    file: FileId,
    pos: u64,
) -> Result<(u64, Hash)> {
    let id = file.raw();
    match file_chunks.range((id, 0)..=(id, pos))?.next_back() {
        Some(e) => {
            let (k, v) = e?;
            Ok((k.value().1, v.value()))
        }
        None => Err(damaged(file, pos, "no chunk covers this offset")),
    }
}

/// The corruption error for `file` at byte `offset`.
pub(crate) fn damaged(file: FileId, offset: u64, what: &str) -> Error {
    Error::Corruption {
        file: Some(file),
        detail: format!("file {file} at byte {offset}: {what}"),
    }
}

/// Copies `bytes[from..]` into `out`, as much as fits; returns how much.
pub(crate) fn copy_from(bytes: &[u8], from: usize, out: &mut [u8]) -> usize {
    let n = (bytes.len() - from).min(out.len());
    out[..n].copy_from_slice(&bytes[from..from + n]);
    n
}
