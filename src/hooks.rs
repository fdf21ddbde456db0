//! Hooks: an application's callbacks on the changes the store makes (Invenio's record signals
//! and record extensions, and Files-REST's file signals).
//!
//! [`Hooks`] are given to the store when it opens ([`StoreBuilder::hooks`](crate::StoreBuilder::hooks)).
//! Each change is an [`Event`]:
//!
//! - **Before hooks** see record changes (created, committed, deleted, undeleted, reverted)
//!   inside the write transaction, after the store's own checks (revision, schema) and before
//!   anything is written, and may refuse the change with their own error: the call then fails
//!   with [`Error::HookRefused`](crate::Error::HookRefused) carrying it, and the change writes
//!   nothing (a panicking before hook is [`Error::HookPanicked`](crate::Error::HookPanicked)).
//!   They get the transaction to read from (its queries see its own changes so far); they
//!   must not start another write on the store, which would wait for this one forever.
//! - **After hooks** see every event, once the transaction that made it has committed and its
//!   commit is durable (as durable as the store's [`Durability`](crate::Durability) makes
//!   commits), on the committing thread, before the call returns. Events of a transaction
//!   that rolls back are never seen, also when the change itself succeeded inside a
//!   [`Store::write`](crate::Store::write) closure that failed later. They run in the order the
//!   changes were made, each hook in the order it was registered.
//!
//! A failing or panicking after hook cannot undo the commit or harm the store: it runs outside
//! every transaction and lock, its panic is caught, the other hooks still run, and the call
//! that made the change still returns its `Ok` (the change *is* stored: an error would invite
//! a retry that repeats it). The failure goes to the
//! [`on_after_failure`](Hooks::on_after_failure) callback, if there is one. An after hook may
//! write to the store (it gets the [`Store`]); the events of that write reach the hooks in turn,
//! so a hook that reacts to its own writes must stop itself.

use crate::files::ObjectVersion;
use crate::ids::UploadId;
use crate::records::Record;
use crate::storage::{Store, WriteTx};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// The error a hook returns: any error of the application's.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// What a hook returns.
pub type HookResult = Result<(), HookError>;

/// A change the store made (or, for a before hook, is about to make).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A record was created (Invenio's `before/after_record_insert`, `pre/post_create`). The
    /// record as stored: revision 0, its `_bucket` set.
    RecordCreated {
        /// The new record.
        record: Record,
    },
    /// A record's body was committed as a new revision (`before/after_record_update`,
    /// `pre/post_commit`): the record as stored, with its new revision id. Changing a record's
    /// files through its files view commits the record too.
    RecordCommitted {
        /// The record at its new revision.
        record: Record,
    },
    /// A record was deleted (`before/after_record_delete`, `pre/post_delete`): soft (its id and
    /// history kept) or `hard` (everything removed). The record as it was before the delete
    /// (for a hard delete of a record already soft-deleted: its empty body).
    RecordDeleted {
        /// The record before the delete.
        record: Record,
        /// Whether everything of it was removed.
        hard: bool,
    },
    /// A soft-deleted record was brought back (`pre/post_undelete`): the record as stored.
    RecordUndeleted {
        /// The record at its new revision.
        record: Record,
    },
    /// A record was reverted to an earlier revision (`before/after_record_revert`,
    /// `pre/post_revert`): the record as stored after it, as a new revision.
    RecordReverted {
        /// The record at its new revision.
        record: Record,
        /// The revision whose body it took.
        revision: u64,
    },
    /// A new version with content became the head of its key: a put, a restore, a copy (also
    /// by a rename, a bucket sync or snapshot), content set on an empty version, or a
    /// completed multipart upload (reported as [`Event::MultipartCompleted`] too). After
    /// hooks only.
    VersionCreated {
        /// The new version.
        version: ObjectVersion,
    },
    /// A key was soft-deleted: a delete marker became its head (Files-REST's `file_deleted`
    /// for a DELETE without a version id). After hooks only.
    ObjectDeleted {
        /// The delete marker now heading the key.
        marker: ObjectVersion,
    },
    /// One version was removed for good (`file_deleted` for a DELETE with a version id). After
    /// hooks only. Removing a whole bucket or record reports no event per version.
    VersionRemoved {
        /// The version as it was before its removal.
        version: ObjectVersion,
    },
    /// A multipart upload was completed into a new version (Files-REST's `file_uploaded`
    /// after a merge). After hooks only.
    MultipartCompleted {
        /// The completed upload (it no longer exists).
        upload: UploadId,
        /// The version it became.
        version: ObjectVersion,
    },
}

/// Which kind of change an [`Event`] is, for errors and for hooks that filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// [`Event::RecordCreated`]
    RecordCreated,
    /// [`Event::RecordCommitted`]
    RecordCommitted,
    /// [`Event::RecordDeleted`]
    RecordDeleted,
    /// [`Event::RecordUndeleted`]
    RecordUndeleted,
    /// [`Event::RecordReverted`]
    RecordReverted,
    /// [`Event::VersionCreated`]
    VersionCreated,
    /// [`Event::ObjectDeleted`]
    ObjectDeleted,
    /// [`Event::VersionRemoved`]
    VersionRemoved,
    /// [`Event::MultipartCompleted`]
    MultipartCompleted,
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl Event {
    /// The kind of change.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::RecordCreated { .. } => EventKind::RecordCreated,
            Event::RecordCommitted { .. } => EventKind::RecordCommitted,
            Event::RecordDeleted { .. } => EventKind::RecordDeleted,
            Event::RecordUndeleted { .. } => EventKind::RecordUndeleted,
            Event::RecordReverted { .. } => EventKind::RecordReverted,
            Event::VersionCreated { .. } => EventKind::VersionCreated,
            Event::ObjectDeleted { .. } => EventKind::ObjectDeleted,
            Event::VersionRemoved { .. } => EventKind::VersionRemoved,
            Event::MultipartCompleted { .. } => EventKind::MultipartCompleted,
        }
    }

    /// The record a record event is about.
    pub fn record(&self) -> Option<&Record> {
        match self {
            Event::RecordCreated { record }
            | Event::RecordCommitted { record }
            | Event::RecordDeleted { record, .. }
            | Event::RecordUndeleted { record }
            | Event::RecordReverted { record, .. } => Some(record),
            _ => None,
        }
    }

    /// The object version a file event is about.
    pub fn version(&self) -> Option<&ObjectVersion> {
        match self {
            Event::VersionCreated { version }
            | Event::VersionRemoved { version }
            | Event::MultipartCompleted { version, .. } => Some(version),
            Event::ObjectDeleted { marker } => Some(marker),
            _ => None,
        }
    }
}

/// How an after hook failed; given to [`Hooks::on_after_failure`].
#[derive(Debug)]
#[non_exhaustive]
pub enum HookFailure {
    /// The hook returned an error.
    Failed(HookError),
    /// The hook panicked; the panic's message.
    Panicked(String),
}

impl std::fmt::Display for HookFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookFailure::Failed(e) => write!(f, "after hook failed: {e}"),
            HookFailure::Panicked(m) => write!(f, "after hook panicked: {m}"),
        }
    }
}

type BeforeFn = dyn Fn(&WriteTx<'_>, &Event) -> HookResult + Send + Sync;
type AfterFn = dyn Fn(&Store, &Event) -> HookResult + Send + Sync;
type FailureFn = dyn Fn(&Event, &HookFailure) + Send + Sync;

/// The callbacks an application registers on a store (see the [module docs](self)).
///
/// ```
/// use recfiles::{Event, Hooks, Store, Error};
/// use serde_json::json;
///
/// # fn main() -> recfiles::Result<()> {
/// let hooks = Hooks::new().before(|_tx, event| match event {
///     Event::RecordCreated { record } if record.get("title").is_none() => {
///         Err("a record needs a title".into())
///     }
///     _ => Ok(()),
/// });
/// let store = Store::builder().hooks(hooks).in_memory()?;
/// assert!(matches!(store.create_record(json!({})), Err(Error::HookRefused { .. })));
/// store.create_record(json!({"title": "Kept"}))?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Hooks {
    before: Vec<Arc<BeforeFn>>,
    after: Vec<Arc<AfterFn>>,
    on_failure: Option<Arc<FailureFn>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before", &self.before.len())
            .field("after", &self.after.len())
            .field("on_after_failure", &self.on_failure.is_some())
            .finish()
    }
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Hooks {
        Hooks::default()
    }

    /// Adds a hook that sees each record change (created, committed, deleted, undeleted,
    /// reverted) before it is written, inside its transaction, and may refuse it by returning
    /// an error: the call fails with [`Error::HookRefused`](crate::Error::HookRefused) and
    /// nothing of the change is written. Hooks run in the order they were added; the first
    /// refusal stops the others.
    pub fn before(
        mut self,
        hook: impl Fn(&WriteTx<'_>, &Event) -> HookResult + Send + Sync + 'static,
    ) -> Hooks {
        self.before.push(Arc::new(hook));
        self
    }

    /// Adds a hook that sees each change once its commit is durable. Its error (or panic)
    /// changes nothing but what [`on_after_failure`](Self::on_after_failure) is told.
    pub fn after(
        mut self,
        hook: impl Fn(&Store, &Event) -> HookResult + Send + Sync + 'static,
    ) -> Hooks {
        self.after.push(Arc::new(hook));
        self
    }

    /// Sets the callback told of each after hook that failed or panicked, with the event it
    /// was given (without one, failures are dropped). A panic in it is caught and dropped.
    pub fn on_after_failure(
        mut self,
        callback: impl Fn(&Event, &HookFailure) + Send + Sync + 'static,
    ) -> Hooks {
        self.on_failure = Some(Arc::new(callback));
        self
    }

    pub(crate) fn has_before(&self) -> bool {
        !self.before.is_empty()
    }

    pub(crate) fn has_after(&self) -> bool {
        !self.after.is_empty()
    }

    /// Runs every after hook on each event, in order, isolating each call.
    pub(crate) fn fire_after(&self, store: &Store, events: Vec<Event>) {
        for event in &events {
            for hook in &self.after {
                let failure = match catch_unwind(AssertUnwindSafe(|| hook(store, event))) {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => HookFailure::Failed(e),
                    Err(panic) => HookFailure::Panicked(panic_message(&*panic)),
                };
                if let Some(tell) = &self.on_failure {
                    let _ = catch_unwind(AssertUnwindSafe(|| tell(event, &failure)));
                }
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

impl WriteTx<'_> {
    /// Runs the before hooks on the change `event` builds (only built when there are hooks).
    pub(crate) fn before_hooks(&self, event: impl FnOnce() -> Event) -> crate::Result<()> {
        let hooks = &self.cfg.hooks;
        if !hooks.has_before() {
            return Ok(());
        }
        let event = event();
        for hook in &hooks.before {
            match catch_unwind(AssertUnwindSafe(|| hook(self, &event))) {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(crate::Error::HookRefused {
                        event: event.kind(),
                        source,
                    });
                }
                Err(panic) => {
                    return Err(crate::Error::HookPanicked {
                        event: event.kind(),
                        message: panic_message(&*panic),
                    });
                }
            }
        }
        Ok(())
    }

    /// Queues the change `event` builds for the after hooks, which see it if this transaction
    /// commits (only built when there are after hooks). Called once the change is made.
    pub(crate) fn after_hooks(&mut self, event: impl FnOnce() -> Event) {
        if self.cfg.hooks.has_after() {
            self.events.push(event());
        }
    }
}
