//! Rebuilds: replay `$all` from position 0 into memory, write a fresh copy of the tables
//! (`<table>__next`), then, under the write lock, apply what arrived meanwhile and rename the
//! copy into place with its checkpoint, in one transaction. The serving copy answers queries
//! until that moment; a rebuild that is interrupted (Ctrl-C, kill -9) leaves it untouched, and
//! the next rebuild starts by dropping the half-written copy.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tenure_store::{CodecError, Envelope, EventRef, EventStore, Position, RecordedEvent, codec};
use uuid::Uuid;

use crate::projection::{Definition, Projection, Rows, Stored, apply_all, each_projection, wrong_stream};
use crate::storage::{Guarded, ProjectionDb, ProjectionError};

/// The suffix of a rebuild's fresh copy of a table.
pub(crate) const NEXT: &str = "__next";
pub(crate) const PAGE: usize = 8192;
/// Pages read and decoded ahead of the one being applied.
const READ_AHEAD: usize = 3;

/// The rows a rebuild replays into memory, for each projection it rebuilds.
pub(crate) struct Replayed {
    rows: Vec<(Projection, Box<dyn Any + Send + Sync>)>,
}

impl Replayed {
    fn new(projections: &[Projection]) -> Replayed {
        let rows = projections
            .iter()
            .map(|p| (*p, each_projection!(*p, D => Box::new(Rows::<D>::replay()) as Box<dyn Any + Send + Sync>)))
            .collect();
        Replayed { rows }
    }

    /// The rows replayed for `D`.
    pub(crate) fn rows<D: Definition>(&self) -> &Rows<D> {
        self.rows
            .iter()
            .find_map(|(_, rows)| rows.downcast_ref::<Rows<D>>())
            .expect("a rebuild writes only the projections it replayed")
    }

    /// Applies a page's events of one projection, as `typed_batch` made them.
    fn apply(&mut self, projection: Projection, batch: Batch) -> Result<(), ProjectionError> {
        let (_, rows) = self.rows.iter_mut().find(|(p, _)| *p == projection).expect("replayed");
        each_projection!(projection, D => apply_batch::<D>(rows, batch))
    }
}

/// A page's events of one projection, typed as its definition reads them.
type Batch = Box<dyn Any + Send>;

/// A new batch for `D`.
fn empty_batch<D: Stored>() -> Batch {
    Box::new(Vec::<Envelope<D::Event>>::new())
}

/// Decodes a scanned event into `D`'s batch, typed as `D` reads it. The envelope is made only
/// where it is kept: it is a few hundred bytes, and handing it from stage to stage copied it
/// at every step (a tenth of the replay's time).
fn push<D: Stored>(projection: Projection, batch: &mut Batch, scanned: EventRef<'_>) -> Result<(), ProjectionError> {
    let events = batch.downcast_mut::<Vec<Envelope<D::Event>>>().expect("a batch of its own projection's events");
    if events.capacity() == 0 {
        // Envelopes are large: growing the batch by doubling would copy a page's worth again.
        events.reserve(PAGE);
    }
    let event = codec::decode_folded(scanned)
        .map_err(|error| poison(projection, scanned.id, scanned.position, scanned.event_type, error))?;
    let event = D::Event::try_from(event).map_err(|event| {
        wrong_stream::<D>(scanned.id, scanned.position, event.type_name(), scanned.stream.to_string())
    })?;
    events.push(Envelope { recorded: scanned.to_folded(), event });
    Ok(())
}

fn apply_batch<D: Stored>(rows: &mut Box<dyn Any + Send + Sync>, batch: Batch) -> Result<(), ProjectionError> {
    let rows = rows.downcast_mut::<Rows<D>>().expect("rows of their own projection");
    let events = batch.downcast::<Vec<Envelope<D::Event>>>().expect("a batch of its own projection's events");
    apply_all(rows, &events)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events read from the store, relevant or not.
    pub events: u64,
    /// The checkpoint of the swapped-in copy.
    pub position: Position,
    pub elapsed: Duration,
    /// Reading and applying every event in memory.
    pub replay: Duration,
    /// Writing the fresh copy.
    pub write: Duration,
    /// Catching up and swapping it in.
    pub swap: Duration,
}

/// Where a rebuild is, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Replaying `$all` into memory: `position` of `head` so far.
    Replay { position: Position, head: Position },
    /// Writing the fresh copy.
    Writing,
    /// Catching up with what arrived meanwhile and swapping the copy in.
    Swapping,
}

/// Rebuilds `projections`, telling `progress` where it is.
pub async fn rebuild<S: EventStore>(
    store: &S,
    db: &ProjectionDb,
    projections: &[Projection],
    mut progress: impl FnMut(Phase),
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let mut locks = Vec::new();
    for projection in projections {
        let lock = db.try_lock(Guarded::Rebuild(*projection)).await?;
        locks.push(lock.ok_or(ProjectionError::RebuildRunning(projection.name()))?);
    }

    // Replay. Pages are read and decoded on other threads, several ahead, and applied here in
    // order: decoding costs as much as reading, and both cores are put to work. Page k covers
    // positions [1 + k·PAGE, 1 + (k+1)·PAGE); `scan_all(from, PAGE)` reaches at least that range
    // even where positions have gaps.
    let fetch = |from: Position| {
        let (store, wanted) = (store.clone(), projections.to_vec());
        tokio::spawn(async move {
            let page = store.scan_all(from, PAGE, DecodedPage::new(from, &wanted), DecodedPage::add).await?;
            page.finish()
        })
    };
    let mut memory = Replayed::new(projections);
    let mut next: Position = 1;
    let mut events = 0u64;
    let mut head = store.head().await?;
    let mut in_flight = std::collections::VecDeque::new();
    let mut ahead: Position = 1;
    while in_flight.len() < READ_AHEAD {
        in_flight.push_back(fetch(ahead));
        ahead += PAGE as Position;
    }
    while let Some(pending) = in_flight.pop_front() {
        let page = pending.await.map_err(|e| ProjectionError::Db(format!("reader failed: {e}")))??;
        let complete = page.complete();
        if complete {
            in_flight.push_back(fetch(ahead));
            ahead += PAGE as Position;
        } else {
            in_flight.iter().for_each(|task| task.abort());
            in_flight.clear();
        }
        events += page.seen;
        let Some(last) = page.last else { continue };
        memory = tokio::task::spawn_blocking(move || {
            for (projection, batch) in page.batches {
                memory.apply(projection, batch)?;
            }
            Ok::<_, ProjectionError>(memory)
        })
        .await
        .map_err(|e| ProjectionError::Db(format!("replay failed: {e}")))??;
        next = last + 1;
        head = head.max(last);
        progress(Phase::Replay { position: last, head });
    }
    let replayed = started.elapsed();
    progress(Phase::Writing);

    db.write_copy(projections, Arc::new(memory)).await?;
    let written_at = started.elapsed();
    progress(Phase::Swapping);
    let (events_after, position) = db.swap(store, projections, next).await?;
    let events = events + events_after;
    drop(locks);
    let elapsed = started.elapsed();
    Ok(RebuildReport {
        events,
        position,
        elapsed,
        replay: replayed,
        write: written_at - replayed,
        swap: elapsed - written_at,
    })
}

pub(crate) fn decode(projection: Projection, recorded: RecordedEvent) -> Result<Envelope, ProjectionError> {
    let (event_id, position, event_type) = (recorded.id, recorded.position, recorded.event_type.clone());
    codec::decode_sealed(recorded).map_err(|error| poison(projection, event_id, position, &event_type, error))
}

fn poison(
    projection: Projection,
    event_id: Uuid,
    position: Position,
    event_type: &str,
    error: CodecError,
) -> ProjectionError {
    ProjectionError::Poison {
        projection: projection.name(),
        event_id,
        position,
        reason: format!("{event_type} event: {error}"),
    }
}

/// One page of the replay, decoded as it is read: the events of its range that concern the
/// projections, a batch for each.
struct DecodedPage {
    batches: Vec<(Projection, Batch)>,
    /// The end of the page's range.
    end: Position,
    /// Rows handed over by the scan, whatever their range.
    rows: usize,
    /// Events in the page's range, relevant or not.
    seen: u64,
    last: Option<Position>,
    /// Whether a row past the range was read.
    past_end: bool,
    /// The first event that could not be decoded; the scan passes over the rest.
    error: Option<ProjectionError>,
}

impl DecodedPage {
    fn new(from: Position, projections: &[Projection]) -> DecodedPage {
        DecodedPage {
            batches: projections.iter().map(|p| (*p, each_projection!(*p, D => empty_batch::<D>()))).collect(),
            end: from + PAGE as Position,
            rows: 0,
            seen: 0,
            last: None,
            past_end: false,
            error: None,
        }
    }

    fn add(&mut self, event: EventRef<'_>) {
        self.rows += 1;
        if event.position >= self.end {
            self.past_end = true;
        }
        if self.past_end || self.error.is_some() {
            return;
        }
        self.seen += 1;
        self.last = Some(event.position);
        // The projections read disjoint kinds of stream.
        let Some((projection, batch)) = self.batches.iter_mut().find(|(p, _)| p.handles(event.stream)) else { return };
        let decoded = each_projection!(*projection, D => push::<D>(*projection, batch, event));
        if let Err(error) = decoded {
            self.error = Some(error);
        }
    }

    fn finish(self) -> Result<DecodedPage, ProjectionError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self),
        }
    }

    /// Whether the page saw its whole range: the read was full or reached past it. Otherwise
    /// the page met the head, and later pages may have been read after more events arrived;
    /// the replay stops there and the swap's catch-up reads the rest in order.
    fn complete(&self) -> bool {
        self.rows == PAGE || self.past_end
    }
}

/// The events of `page` that `projection` reads, decoded.
pub(crate) fn decode_for(projection: Projection, page: &[RecordedEvent]) -> Result<Vec<Envelope>, ProjectionError> {
    page.iter().filter(|r| projection.handles(&r.stream)).map(|r| decode(projection, r.clone())).collect()
}
