//! Live updates: each projection follows `$all` from its checkpoint and writes each batch of
//! rows together with the new checkpoint. An event that cannot be decoded or applied stops that
//! projection (recorded for `tenure projections status`, logged) without touching the others.

use futures_util::{FutureExt, StreamExt};
use tenure_store::{EventStore, Position, RecordedEvent, codec};

use crate::projection::{ALL, Projection};
use crate::storage::{Guarded, ProjectionDb, ProjectionError};

/// Events per transaction.
pub const PAGE: usize = 1024;

/// Applies everything the store holds now, then returns the checkpoint reached.
pub async fn catch_up<S: EventStore>(
    store: &S,
    db: &ProjectionDb,
    projection: Projection,
) -> Result<Position, ProjectionError> {
    loop {
        let from = db.checkpoint(projection).await?.position + 1;
        let page = store.read_all(from, PAGE).await?;
        if page.is_empty() {
            return Ok(from - 1);
        }
        apply_page(db, projection, page).await?;
    }
}

/// Follows the store. A poison event stops the projection until a rebuild clears the failure;
/// a projection that failed before is tried again from its checkpoint when its runner starts
/// (a newer build may read the event). Passing trouble (a busy database, a store that went away
/// for a moment) is logged and retried.
pub async fn run<S: EventStore>(store: S, db: ProjectionDb, projection: Projection) -> Result<(), ProjectionError> {
    if db.checkpoint(projection).await?.failed.is_some() {
        db.clear_failure(projection).await?;
    }
    loop {
        match follow(&store, &db, projection).await {
            Err(ProjectionError::Poison { .. }) => {
                // Stopped before the poison event (recorded and logged). A rebuild by a build
                // that reads the event clears the failure; then this runner follows again.
                while db.checkpoint(projection).await?.failed.is_some() {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                tracing::info!(projection = projection.name(), "the failure was cleared; following the store again");
            }
            Err(error) => {
                tracing::warn!(projection = projection.name(), "{error}; retrying in a second");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Ok(()) => return Ok(()),
        }
    }
}

async fn follow<S: EventStore>(store: &S, db: &ProjectionDb, projection: Projection) -> Result<(), ProjectionError> {
    let checkpoint = db.checkpoint(projection).await?;
    let mut events = Box::pin(store.subscribe_all(checkpoint.position + 1));
    while let Some(first) = events.next().await {
        let mut page = vec![first?];
        while page.len() < PAGE {
            match events.next().now_or_never() {
                Some(Some(event)) => page.push(event?),
                _ => break,
            }
        }
        apply_page(db, projection, page).await?;
    }
    Ok(())
}

/// Applies a page of `$all`: the events before a poison event are kept, the poison event stops
/// the projection.
async fn apply_page(
    db: &ProjectionDb,
    projection: Projection,
    page: Vec<RecordedEvent>,
) -> Result<Position, ProjectionError> {
    let through = page.last().map_or(0, |e| e.position);
    let mut envelopes = Vec::with_capacity(page.len());
    for recorded in page.iter().filter(|r| projection.handles(&r.stream)) {
        match codec::decode_sealed(recorded.clone()) {
            Ok(envelope) => envelopes.push(envelope),
            Err(error) => {
                // The events before it are good; an apply error among them stops there first.
                return match apply_or_stop(db, projection, &page, envelopes, recorded.position - 1).await {
                    Ok(_) => Err(stop(db, projection, recorded, error.to_string()).await),
                    Err(earlier) => Err(earlier),
                };
            }
        }
    }
    apply_or_stop(db, projection, &page, envelopes, through).await
}

/// Applies `envelopes` through `through`; a poison event among them stops the projection there,
/// after the events before it are applied.
async fn apply_or_stop(
    db: &ProjectionDb,
    projection: Projection,
    page: &[RecordedEvent],
    envelopes: Vec<tenure_store::Envelope>,
    through: Position,
) -> Result<Position, ProjectionError> {
    match db.apply_batch(projection, envelopes.clone(), through).await {
        Err(ProjectionError::Poison { position, reason, .. }) => {
            let before: Vec<_> = envelopes.into_iter().filter(|e| e.recorded.position < position).collect();
            db.apply_batch(projection, before, position - 1).await?;
            let recorded = page.iter().find(|r| r.position == position).expect("the poison event is in the page");
            Err(stop(db, projection, recorded, reason).await)
        }
        other => other,
    }
}

async fn stop(db: &ProjectionDb, projection: Projection, event: &RecordedEvent, reason: String) -> ProjectionError {
    let error = ProjectionError::Poison {
        projection: projection.name(),
        event_id: event.id,
        position: event.position,
        reason: format!("{} event: {reason}", event.event_type),
    };
    tracing::error!(projection = projection.name(), event_id = %event.id, position = event.position, "{error}");
    if let Err(record) = db.record_failure(projection, event.position, error.to_string()).await {
        tracing::error!(projection = projection.name(), "cannot record the failure: {record}");
    }
    error
}

/// Starts a runner for every projection, unless another process runs them already (`None`).
/// The returned future ends when every runner has stopped; failures are logged and recorded.
pub async fn start<S: EventStore>(
    store: S,
    db: ProjectionDb,
) -> Result<Option<impl std::future::Future<Output = Result<(), ProjectionError>>>, ProjectionError> {
    let Some(lock) = db.try_lock(Guarded::Runner).await? else { return Ok(None) };
    let mut runners = tokio::task::JoinSet::new();
    for projection in ALL {
        runners.spawn(run(store.clone(), db.clone(), projection));
    }
    Ok(Some(async move {
        let mut check = tokio::time::interval(LOCK_CHECK);
        loop {
            tokio::select! {
                ended = runners.join_next() => match ended {
                    None => return Ok(()),
                    // A poisoned projection stops alone (recorded and logged); the others go on.
                    Some(Ok(Ok(())) | Ok(Err(ProjectionError::Poison { .. }))) => {}
                    Some(Ok(Err(error))) => return Err(error),
                    Some(Err(panic)) => return Err(ProjectionError::Db(format!("a runner failed: {panic}"))),
                },
                _ = check.tick() => {
                    // Lost with its connection (a database restart): another process may hold it
                    // now, and two runners must never write the read models at once.
                    if !lock.held().await {
                        runners.abort_all();
                        return Err(ProjectionError::LockLost);
                    }
                }
            }
        }
    }))
}

/// An outage waits; any other error stops the projections, logged, for a human to look at.
fn is_outage(error: &tenure_store::StoreError) -> bool {
    matches!(error, tenure_store::StoreError::Unavailable(_) | tenure_store::StoreError::DiskFull(_))
}

/// How often a runner checks that it still holds the runner's lock.
const LOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the projections here, or, while another process runs them (another gateway on the same
/// read models), waits to take over when it stops. A runner that lost its lock, or stopped on an
/// outage of the store, stands by again rather than end: the projections come back by themselves.
pub async fn run_or_stand_by<S: EventStore>(store: S, db: ProjectionDb) -> Result<(), ProjectionError> {
    let mut announced = false;
    loop {
        let started = match start(store.clone(), db.clone()).await {
            Ok(started) => started,
            Err(ProjectionError::Store(error)) if is_outage(&error) => {
                tracing::warn!("the projections wait for the store: {error}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        if let Some(runners) = started {
            if announced {
                tracing::info!("the projections' runner stopped elsewhere; this process runs them now");
            }
            match runners.await {
                Err(ProjectionError::LockLost) => {
                    tracing::warn!("the projections' lock was lost (the database restarted); taking it again");
                    announced = false;
                    continue;
                }
                Err(ProjectionError::Store(error)) if is_outage(&error) => {
                    tracing::warn!("the projections stopped on an outage of the store; starting again: {error}");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                other => return other,
            }
        }
        if !announced {
            tracing::info!("another process runs the projections; this one reads them and stands by");
            announced = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
