//! What a projection is: a name, the kind of stream it reads, and how each event of that kind
//! changes its rows. Each projection is a `Definition` in a file of its own (with its tables on
//! each backend beside it); the registry at the bottom lists them, and is the only place that
//! does. The runner, rebuilds and both storages work from the definitions, never from a list of
//! their own.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use tenure_domain::Event;
use tenure_store::Envelope;

use crate::storage::postgres::PgTables;
use crate::storage::sqlite::SqliteTables;

/// Why an event cannot be applied: a poison event, which stops its projection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{event_type} for account {account} that was never invited")]
    NoSuchAccount { event_type: &'static str, account: tenure_domain::AccountId },
    #[error("{event_type} does not belong on stream {stream}")]
    WrongStream { event_type: &'static str, stream: String },
}

pub trait Definition: Sized + Send + Sync + 'static {
    /// The projection's name, as operators and checkpoints know it.
    const NAME: &'static str;
    /// The prefix of the streams it reads; it passes over every other stream.
    const STREAMS: &'static str;
    /// The events of those streams: one of any other kind there is a poison event.
    type Event: TryFrom<Event, Error = Event> + Send + Sync + 'static;
    type Key: Clone + Eq + Hash + Ord + Send + Sync + std::fmt::Debug + 'static;
    type Row: Clone + Send + Sync + std::fmt::Debug + 'static;

    fn key(row: &Self::Row) -> Self::Key;
    /// The row `envelope` changes in place (rather than puts or removes whole), which a batch
    /// loads before applying it.
    fn reads(envelope: &Envelope<Self::Event>) -> Option<Self::Key>;
    fn apply(rows: &mut Rows<Self>, envelope: &Envelope<Self::Event>) -> Result<(), ApplyError>;
}

/// A definition with its tables on both backends: what the registry takes.
pub trait Stored: Definition + SqliteTables + PgTables {}
impl<D: Definition + SqliteTables + PgTables> Stored for D {}

/// The rows a batch of events sees and changes: those it reads, loaded first, in a live batch;
/// all of them in a rebuild, which builds every row in memory before writing a fresh copy.
pub struct Rows<D: Definition> {
    rows: HashMap<D::Key, D::Row>,
    /// The keys put or removed in a live batch, to write back; a rebuild writes every row.
    changed: Option<HashSet<D::Key>>,
}

impl<D: Definition> Rows<D> {
    /// Rows read from storage for a live batch.
    pub(crate) fn loaded(rows: Vec<D::Row>) -> Rows<D> {
        let rows = rows.into_iter().map(|row| (D::key(&row), row)).collect();
        Rows { rows, changed: Some(HashSet::new()) }
    }

    /// No rows yet: a rebuild's start.
    pub(crate) fn replay() -> Rows<D> {
        Rows { rows: HashMap::new(), changed: None }
    }

    pub fn insert(&mut self, row: D::Row) {
        let key = D::key(&row);
        self.mark(&key);
        self.rows.insert(key, row);
    }

    /// Changes the row of `key`; `false` when there is none.
    pub fn update(&mut self, key: &D::Key, change: impl FnOnce(&mut D::Row)) -> bool {
        let Some(row) = self.rows.get_mut(key) else { return false };
        change(row);
        self.mark(key);
        true
    }

    pub fn remove(&mut self, key: &D::Key) {
        self.mark(key);
        self.rows.remove(key);
    }

    fn mark(&mut self, key: &D::Key) {
        if let Some(changed) = &mut self.changed {
            changed.insert(key.clone());
        }
    }

    /// What a live batch changed: each key with its row, or `None` where it was removed.
    pub(crate) fn changes(&self) -> impl Iterator<Item = (&D::Key, Option<&D::Row>)> {
        self.changed.iter().flatten().map(|key| (key, self.rows.get(key)))
    }

    /// Every row, in key order: how a rebuild writes its fresh copy (a B-tree then only ever
    /// grows at its right edge).
    pub(crate) fn sorted(&self) -> Vec<&D::Row> {
        let mut rows: Vec<(&D::Key, &D::Row)> = self.rows.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows.into_iter().map(|(_, row)| row).collect()
    }
}

/// An event as `D` reads it: one of another kind on its streams is a poison event.
pub(crate) fn typed<D: Definition>(envelope: Envelope) -> Result<Envelope<D::Event>, crate::ProjectionError> {
    let (event_id, position) = (envelope.recorded.id, envelope.recorded.position);
    envelope.into_kind().map_err(|error| match error {
        tenure_store::CodecError::WrongStream { event_type, stream, .. } => {
            wrong_stream::<D>(event_id, position, event_type, stream)
        }
        other => crate::ProjectionError::Poison { projection: D::NAME, event_id, position, reason: other.to_string() },
    })
}

/// The poison event of another kind of stream than `D` reads, found on one of its streams.
pub(crate) fn wrong_stream<D: Definition>(
    event_id: uuid::Uuid,
    position: tenure_store::Position,
    event_type: &'static str,
    stream: String,
) -> crate::ProjectionError {
    let reason = ApplyError::WrongStream { event_type, stream }.to_string();
    crate::ProjectionError::Poison { projection: D::NAME, event_id, position, reason }
}

/// A live batch as `D` reads it, in position order, up to the first event of another kind (the
/// error, returned beside): an event before it that cannot be applied must be named first, since
/// the runner applies everything before the event an error names, and records that event.
pub(crate) fn typed_in_order<D: Definition>(
    events: Vec<Envelope>,
) -> (Vec<Envelope<D::Event>>, Option<crate::ProjectionError>) {
    let mut typed_events = Vec::with_capacity(events.len());
    for envelope in events {
        match typed::<D>(envelope) {
            Ok(event) => typed_events.push(event),
            Err(error) => return (typed_events, Some(error)),
        }
    }
    (typed_events, None)
}

/// Applies `envelopes` to `rows`; the first that cannot be applied is named in the error.
pub(crate) fn apply_all<D: Definition>(
    rows: &mut Rows<D>,
    envelopes: &[Envelope<D::Event>],
) -> Result<(), crate::ProjectionError> {
    for envelope in envelopes {
        D::apply(rows, envelope).map_err(|reason| crate::ProjectionError::Poison {
            projection: D::NAME,
            event_id: envelope.recorded.id,
            position: envelope.recorded.position,
            reason: reason.to_string(),
        })?;
    }
    Ok(())
}

/// The keys a batch reads, each once.
pub(crate) fn keys_read<D: Definition>(envelopes: &[Envelope<D::Event>]) -> Vec<D::Key> {
    let mut keys: Vec<D::Key> = envelopes.iter().filter_map(D::reads).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Builds `Projection`, one variant per registered definition, and `each_projection!`, which
/// runs generic code with a projection's definition as a type.
macro_rules! registry {
    ($d:tt $($(#[$doc:meta])* $variant:ident => $definition:ty),* $(,)?) => {
        /// A registered projection, as a value: what operators, checkpoints and callers name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Projection {
            $($(#[$doc])* $variant,)*
        }

        pub const ALL: [Projection; [$(stringify!($variant),)*].len()] = [$(Projection::$variant,)*];

        /// `each_projection!(projection, D => body)`: `body` with `D` the projection's definition.
        macro_rules! each_projection {
            ($d projection:expr, $d definition:ident => $d body:expr) => {
                match $d projection {
                    $(crate::projection::Projection::$variant => {
                        type $d definition = $definition;
                        $d body
                    })*
                }
            };
        }
        pub(crate) use each_projection;
    };
}

// New projections go at the end: a projection's place names its PostgreSQL lock keys, which
// processes of two versions must agree on.
registry! {
    $
    /// Accounts: the login lookup, the account view and the org directory, from `account-*`.
    Accounts => crate::accounts::Accounts,
    /// Open orders, open tickets and maintenance windows, from `org-*`.
    OrgWidgets => crate::org_widgets::OrgItems,
}

impl Projection {
    pub fn name(self) -> &'static str {
        each_projection!(self, D => D::NAME)
    }

    pub fn parse(name: &str) -> Option<Projection> {
        ALL.iter().copied().find(|p| p.name() == name)
    }

    /// Whether events of `stream` concern this projection; it passes over the others.
    pub fn handles(self, stream: &str) -> bool {
        each_projection!(self, D => stream.starts_with(D::STREAMS))
    }

    /// Its place in the registry, which names its locks.
    pub(crate) fn index(self) -> usize {
        ALL.iter().position(|p| *p == self).expect("every projection is registered")
    }
}
