//! The umbrella error type and the facts each failure carries.

use crate::ids::{BucketId, FileId, RecordId, UploadId, VersionId};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which limit a rejected upload ran into (Invenio's `FileSizeLimit` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// The bucket's quota would be exceeded ("Bucket quota exceeded.").
    Quota,
    /// The bucket's per-file maximum would be exceeded ("Maximum file size exceeded.").
    MaxFileSize,
}

impl std::fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SizeLimit::Quota => "bucket quota exceeded",
            SizeLimit::MaxFileSize => "maximum file size exceeded",
        })
    }
}

/// Why an object key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    /// The key is the empty string.
    Empty,
    /// The key contains a NUL character.
    ContainsNul,
    /// The key is longer (in bytes) than the store's configured limit.
    TooLong {
        /// The configured limit in bytes.
        max: usize,
    },
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyProblem::Empty => f.write_str("key is empty"),
            KeyProblem::ContainsNul => f.write_str("key contains a NUL character"),
            KeyProblem::TooLong { max } => write!(f, "key is longer than {max} bytes"),
        }
    }
}

/// An opaque failure of the underlying database engine (I/O, corruption detected by the engine,
/// a poisoned transaction). Its message says what happened; its type is not part of the API so
/// that the engine can change without breaking callers.
#[derive(Debug)]
pub struct EngineError(pub(crate) Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Every error recfiles returns. Variants carry the values involved so callers can match on them
/// precisely; the names follow Invenio's exceptions where one exists.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the store itself -------------------------------------------------------------------
    /// The database engine failed (I/O error, engine-level corruption, poisoned transaction).
    #[error("storage engine failure: {0}")]
    Engine(#[from] EngineError),
    /// Reading or writing the store's own file (or backend) failed, or a file-system call the
    /// store made did. An error of the caller's own reader during an upload is never this: it
    /// is [`Error::UploadStream`].
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The store was closed ([`Store::close`](crate::Store::close), through this handle or a
    /// clone of it): nothing more can be read or written through it. Open the file again.
    #[error("the store is closed")]
    Closed,
    /// Another open handle holds the store file, in this process or another (a second
    /// instance of an app, say). Nothing was changed; the file opens once that handle closes.
    #[error("the store file{} is already open in another handle or process",
        .path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    AlreadyOpen {
        /// The file's path (`None` for a store opened on a backend).
        path: Option<std::path::PathBuf>,
    },
    /// A durable commit was complete and on its way to the disk when waiting for the disk
    /// failed: the commit may or may not survive a crash. Nothing later is accepted on this
    /// open store (every call fails); reopen it to see which it was.
    #[error("the commit's outcome is unknown: its sync failed: {source}")]
    CommitUnknown {
        /// The failed sync.
        source: std::io::Error,
    },
    /// The file was written by a newer recfiles whose format this version does not understand.
    #[error("store format version {found} is newer than the supported version {supported}")]
    FormatTooNew {
        /// The format version stored in the file.
        found: u32,
        /// The newest format version this build reads.
        supported: u32,
    },
    /// The file was written by an older recfiles whose format this version no longer reads
    /// (format 1: chunks keyed by their hash); open it with the build that wrote it and copy
    /// its content out.
    #[error("store format version {found} is older than the oldest supported version {oldest}")]
    FormatTooOld {
        /// The format version stored in the file.
        found: u32,
        /// The oldest format version this build reads.
        oldest: u32,
    },
    /// The store was opened for reading only ([`crate::StoreBuilder::open_read_only`],
    /// [`crate::StoreBuilder::salvage`]): nothing can be written through it.
    #[error("the store was opened read-only")]
    ReadOnly,
    /// The file is a redb database but not a recfiles store (no or foreign `meta` table).
    #[error("not a recfiles store: {detail}")]
    NotAStore {
        /// What was found instead.
        detail: String,
    },
    /// A builder option has a value the store cannot work with.
    #[error("invalid configuration: {option} = {value}: {reason}")]
    InvalidConfig {
        /// The option's name.
        option: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Stored data failed a check (a chunk whose bytes no longer match their hash, a row that
    /// does not decode). Never returned for caller mistakes.
    #[error("corruption detected: {detail}")]
    Corruption {
        /// The file affected, when the damage lies in file content.
        file: Option<FileId>,
        /// What is damaged.
        detail: String,
    },
    /// The object store holding a location's content failed (unreachable, refused the
    /// credentials, a node down, an upload cut off). Nothing that refers to content it did not
    /// confirm was committed.
    #[error("content backend of location {location:?} failed: {detail}")]
    ContentBackend {
        /// The location whose backend failed.
        location: String,
        /// What the backend reported.
        detail: String,
    },
    /// A location's URI names a kind of storage this build or this store handle cannot reach:
    /// an `s3://` location without the `s3` feature, or an unknown scheme.
    #[error("location {location:?} ({uri}) has no content backend: {reason}")]
    LocationUnavailable {
        /// The location.
        location: String,
        /// Its URI.
        uri: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Reading the caller's input stream failed; nothing was stored. This is the caller's own
    /// reader (the file or socket it passed to a put or a part upload), never the store's
    /// file, whose failures are [`Error::Io`] or [`Error::Engine`].
    #[error("reading the upload stream failed: {source}")]
    UploadStream {
        /// The error the reader returned.
        #[source]
        source: std::io::Error,
    },

    /// A before hook refused the change; nothing of it was written. `source` is the hook's
    /// own error (downcast it to the application's type).
    #[error("a {event} hook refused the change: {source}")]
    HookRefused {
        /// The change refused.
        event: crate::hooks::EventKind,
        /// The hook's error.
        #[source]
        source: crate::hooks::HookError,
    },
    /// A before hook panicked; the change was refused and nothing of it was written.
    #[error("a {event} hook panicked: {message}")]
    HookPanicked {
        /// The change refused.
        event: crate::hooks::EventKind,
        /// The panic's message.
        message: String,
    },

    // ---- locations and buckets --------------------------------------------------------------
    /// A location name does not match `^[a-z][a-z0-9-]+$` (2 to 20 characters).
    #[error("invalid location name {name:?} (lower-case alphanumeric and dashes, 2-20 chars)")]
    InvalidLocationName {
        /// The rejected name.
        name: String,
    },
    /// A location with that name already exists.
    #[error("location {name:?} already exists")]
    LocationExists {
        /// The duplicate name.
        name: String,
    },
    /// No location has that name.
    #[error("location {name:?} not found")]
    LocationNotFound {
        /// The missing name.
        name: String,
    },
    /// The storage class is not one of `S` (standard) or `A` (archive).
    #[error("invalid storage class {class:?}")]
    InvalidStorageClass {
        /// The rejected class.
        class: String,
    },
    /// No live bucket has that id (deleted buckets count as missing for writes).
    #[error("bucket {bucket} not found")]
    BucketNotFound {
        /// The missing bucket.
        bucket: BucketId,
    },
    /// The bucket is locked for modifications (Invenio's `BucketLockedError`).
    #[error("bucket {bucket} is locked for modifications")]
    BucketLocked {
        /// The locked bucket.
        bucket: BucketId,
    },
    /// The bucket is soft-deleted and cannot be modified.
    #[error("bucket {bucket} is deleted")]
    BucketDeleted {
        /// The deleted bucket.
        bucket: BucketId,
    },
    /// An operation that Invenio refuses with `InvalidOperationError`.
    #[error("invalid operation: {reason}")]
    InvalidOperation {
        /// Invenio's message, e.g. "Cannot copy a delete marker."
        reason: &'static str,
    },

    // ---- objects and files -------------------------------------------------------------------
    /// The object key is not acceptable (Invenio's `InvalidKeyError`).
    #[error("invalid key {key:?}: {problem}")]
    InvalidKey {
        /// The rejected key (lossily shortened to 200 characters).
        key: String,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// An upload would exceed a bucket limit (Invenio's `FileSizeError`).
    #[error("{limit} in bucket {bucket}: limit {limit_bytes} bytes, upload needs {attempted}")]
    FileSize {
        /// The bucket whose limit applies.
        bucket: BucketId,
        /// Which limit.
        limit: SizeLimit,
        /// The bytes the limit allowed for this upload.
        limit_bytes: u64,
        /// The bytes the upload needed (at least; streaming stops at the first byte too many).
        attempted: u64,
    },
    /// The stream was longer or shorter than the declared size (`UnexpectedFileSizeError`).
    #[error("file is {} than expected: declared {expected} bytes, got {actual}{}",
        if *.actual > *.expected { "bigger" } else { "smaller" },
        if *.actual > *.expected { " or more" } else { "" })]
    UnexpectedFileSize {
        /// The declared size.
        expected: u64,
        /// The bytes received (for a too-big stream: the count at which reading stopped).
        actual: u64,
    },
    /// A checksum supplied with an upload did not match the content; nothing was stored.
    #[error("checksum mismatch: expected {expected}, content has {actual}")]
    ChecksumMismatch {
        /// The checksum the caller declared.
        expected: String,
        /// The checksum of the bytes received.
        actual: String,
    },
    /// No live head exists for the key in the bucket.
    #[error("object {key:?} not found in bucket {bucket}")]
    ObjectNotFound {
        /// The bucket searched.
        bucket: BucketId,
        /// The key searched.
        key: String,
    },
    /// No object version has that id (or it is a delete marker where content was needed).
    #[error("object version {version} not found")]
    VersionNotFound {
        /// The missing version.
        version: VersionId,
    },
    /// The version already has content (Invenio's `FileInstanceAlreadySetError`).
    #[error("object version {version} already has a file")]
    FileAlreadySet {
        /// The version concerned.
        version: VersionId,
    },
    /// No file instance has that id.
    #[error("file {file} not found")]
    FileNotFound {
        /// The missing file.
        file: FileId,
    },
    /// The file is marked unreadable (Invenio's `FileInstanceUnreadableError`).
    #[error("file {file} is not readable")]
    FileUnreadable {
        /// The file concerned.
        file: FileId,
    },
    /// A tag key or value is out of bounds (Invenio's `InvalidTagError`).
    #[error("invalid tag {key:?}: {reason}")]
    InvalidTag {
        /// The tag key (shortened to 200 characters).
        key: String,
        /// What is wrong.
        reason: &'static str,
    },

    // ---- multipart uploads -------------------------------------------------------------------
    /// No open multipart upload has that id.
    #[error("multipart upload {upload} not found")]
    MultipartNotFound {
        /// The missing upload.
        upload: UploadId,
    },
    /// The part size is outside the configured bounds.
    #[error("invalid part size {part_size} (allowed {min}..={max})")]
    MultipartInvalidPartSize {
        /// The rejected part size.
        part_size: u64,
        /// Smallest allowed part size.
        min: u64,
        /// Largest allowed part size.
        max: u64,
    },
    /// The total size does not fit the part size and the part count limit.
    #[error("invalid multipart file size {size} for part size {part_size}")]
    MultipartInvalidSize {
        /// The rejected size.
        size: u64,
        /// The part size it was combined with.
        part_size: u64,
    },
    /// The part number is outside `0..=last`.
    #[error("invalid part number {part} (last is {last})")]
    MultipartInvalidPartNumber {
        /// The rejected part number.
        part: u32,
        /// The last valid part number.
        last: u32,
    },
    /// The part's content is not the size its position requires.
    #[error("part {part} must be {expected} bytes, got {actual}")]
    MultipartPartSize {
        /// The part number.
        part: u32,
        /// The size the part must have.
        expected: u64,
        /// The bytes received.
        actual: u64,
    },
    /// Completion was asked before every part arrived.
    #[error("not all parts have been uploaded: missing {missing:?}")]
    MultipartMissingParts {
        /// The part numbers still missing (at most the first 100).
        missing: Vec<u32>,
    },

    // ---- records ------------------------------------------------------------------------------
    /// No record has that id (or it is soft-deleted and deleted records were not asked for).
    #[error("record {record} not found")]
    RecordNotFound {
        /// The missing record.
        record: RecordId,
    },
    /// A record with that id already exists.
    #[error("record {record} already exists")]
    RecordExists {
        /// The duplicate id.
        record: RecordId,
    },
    /// The operation needs a live record but the record is soft-deleted (`MissingModelError`).
    #[error("record {record} is deleted")]
    RecordDeleted {
        /// The deleted record.
        record: RecordId,
    },
    /// Optimistic concurrency: the caller's copy is older than the stored revision.
    #[error("record {record} changed: caller has revision {expected}, store has {found}")]
    RevisionConflict {
        /// The record concerned.
        record: RecordId,
        /// The revision the caller's copy was based on.
        expected: u64,
        /// The revision in the store.
        found: u64,
    },
    /// The record has no revision with that id.
    #[error("record {record} has no revision {revision}")]
    RevisionNotFound {
        /// The record concerned.
        record: RecordId,
        /// The missing revision.
        revision: u64,
    },
    /// A record body must be a JSON object.
    #[error("record body must be a JSON object, got {found}")]
    NotAnObject {
        /// The JSON type that was given.
        found: &'static str,
    },
    /// A record's `$schema` names no registered schema, or is not a string.
    #[error("schema {schema:?} is not registered")]
    SchemaNotFound {
        /// The `$schema` value.
        schema: String,
    },
    /// A JSON document (a record body, with the file metadata its `_files` holds, or a schema)
    /// nests arrays and objects deeper than [`crate::MAX_JSON_DEPTH`]: the store could not read
    /// it back. Nothing was written.
    #[error("{what} nests JSON {depth} levels deep; at most {limit} are accepted")]
    JsonTooDeep {
        /// What the document is (a record body or a schema, with its id or URL).
        what: String,
        /// How deep it nests (the document itself is level 1).
        depth: usize,
        /// The most accepted.
        limit: usize,
    },
    /// A schema could not be compiled.
    #[error("invalid JSON schema {schema:?}: {detail}")]
    InvalidSchema {
        /// The schema URL.
        schema: String,
        /// Why it does not compile.
        detail: String,
    },
    /// A record body failed its JSON Schema; nothing was written.
    #[error("record does not match schema {schema:?}: {}", join_violations(.errors))]
    SchemaValidation {
        /// The schema URL.
        schema: String,
        /// One entry per violation (at most the first 100), each with its JSON pointer.
        errors: Vec<SchemaViolation>,
    },
    /// The persistent identifier is already taken.
    #[error("persistent identifier {pid_type}:{pid_value} already exists")]
    PidExists {
        /// The PID type, e.g. `recid`.
        pid_type: String,
        /// The PID value.
        pid_value: String,
    },
    /// No persistent identifier matches.
    #[error("persistent identifier {pid_type}:{pid_value} not found")]
    PidNotFound {
        /// The PID type.
        pid_type: String,
        /// The PID value.
        pid_value: String,
    },
    /// The persistent identifier exists but is deleted (Invenio's `PIDDeletedError`, HTTP 410).
    #[error("persistent identifier {pid_type}:{pid_value} is deleted")]
    PidDeleted {
        /// The PID type.
        pid_type: String,
        /// The PID value.
        pid_value: String,
        /// The record it pointed to.
        record: RecordId,
    },
    /// The persistent identifier redirects to another one (Invenio's `PIDRedirectedError`).
    #[error("persistent identifier {pid_type}:{pid_value} redirects to {to_type}:{to_value}")]
    PidRedirected {
        /// The PID type.
        pid_type: String,
        /// The PID value.
        pid_value: String,
        /// The type of the PID it redirects to.
        to_type: String,
        /// The value of the PID it redirects to.
        to_value: String,
    },
    /// A PID type or value is not acceptable (empty, over 255 characters, or with a NUL).
    #[error("invalid persistent identifier {pid_type:?}:{pid_value:?}: {reason}")]
    InvalidPid {
        /// The PID type given (shortened).
        pid_type: String,
        /// The PID value given (shortened).
        pid_value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A record file metadata name is an attribute of the object version (Invenio's KeyError).
    #[error("{key:?} is a reserved file attribute")]
    ReservedKey {
        /// The reserved name.
        key: String,
    },
    /// The record has no bucket, so it has no files view.
    #[error("record {record} has no bucket")]
    NoBucket {
        /// The record concerned.
        record: RecordId,
    },
    /// A record's files can be set all at once only while its bucket has no live file
    /// (Invenio-Records-Files' `RuntimeError("Can not update existing files.")`).
    #[error("record {record} already has files; they can not be set all at once")]
    FilesExist {
        /// The record concerned.
        record: RecordId,
    },
    /// The record's files view refused the operation (Invenio-Records-Files' checks).
    #[error("file {key:?} of record {record}: {reason}")]
    RecordFile {
        /// The record concerned.
        record: RecordId,
        /// The key concerned.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },

    // ---- transfer (import of dumps) ---------------------------------------------------------
    /// An import would write over something the store already holds (the same id, or the same
    /// content as another file); nothing was imported.
    #[error("cannot import: the store already holds the {what} {id}")]
    ImportConflict {
        /// What kind of thing: `record`, `bucket`, `object version`, `file`, `PID`, ….
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// What an import was given does not describe a consistent store; nothing was imported.
    #[error("cannot import: {reason}")]
    InvalidImport {
        /// What is inconsistent, naming the ids concerned.
        reason: String,
    },
}

/// One way a record body breaks its JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer (RFC 6901) to the offending value in the body; `""` is the body itself.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "at {at}: {}", self.message)
    }
}

fn join_violations(v: &[SchemaViolation]) -> String {
    v.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub(crate) fn corrupt(detail: impl Into<String>) -> Error {
        Error::Corruption {
            file: None,
            detail: detail.into(),
        }
    }
}

macro_rules! engine_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::Engine(EngineError(Box::new(redb::Error::from(e))))
            }
        }
    )*};
}

engine_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError,
);

/// Shortens user-supplied text carried inside an error so a huge key cannot bloat messages.
pub(crate) fn shorten(s: &str) -> String {
    if s.chars().count() <= 200 {
        s.to_string()
    } else {
        s.chars().take(200).collect::<String>() + "…"
    }
}
