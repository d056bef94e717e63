//! Recovery requests, worked off the request that made them. The answer (`202 {"sent": true}`)
//! is given before anything about the name or address is looked up, so neither its content nor
//! its timing can tell a known name from an unknown, deactivated or deleted one. The queue is
//! bounded: under a flood the surplus is dropped (and counted), never held in memory.

use std::sync::Arc;
use std::time::Duration;

use tenure_domain::events::Client;
use tenure_domain::{Status, Username};
use tokio::sync::mpsc;

use super::{email_index::EmailIndex, flow};
use crate::error::Error;
use crate::state::{App, as_user};

/// Requests waiting to be worked: a few seconds' worth, some hundred kilobytes at most.
const QUEUE: usize = 4096;
/// How long a username reminder waits for the email index to reach the store's head.
const INDEX_CATCH_UP: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum Request {
    Password { username: String, client: Client },
    Username { email: String },
}

#[derive(Clone)]
pub struct Requests {
    queue: mpsc::Sender<Request>,
}

impl Requests {
    /// The queue, and its receiving end for `work`.
    pub fn new() -> (Requests, mpsc::Receiver<Request>) {
        let (queue, received) = mpsc::channel(QUEUE);
        (Requests { queue }, received)
    }

    /// Queues `request`; false when the queue is full and it was dropped.
    pub fn submit(&self, request: Request) -> bool {
        self.queue.try_send(request).is_ok()
    }
}

/// Works the requests on a thread of their own, one at a time, for as long as the app runs. Not
/// on the threads that answer requests: there, a request's work could run while the answer to
/// it (or to the next) waits, and so tell in its timing what the name is.
pub fn start(app: std::sync::Weak<App>, received: mpsc::Receiver<Request>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("recovery requests cannot be worked: no runtime for them: {error}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("recovery-requests".into())
        .spawn(move || runtime.block_on(work(app, received)));
    if let Err(error) = spawned {
        tracing::error!("recovery requests cannot be worked: no thread for them: {error}");
    }
}

/// How long requests wait before they are worked, together: their work then falls at moments that
/// have nothing to do with when any one of them was answered.
const BATCH_DELAY: Duration = Duration::from_millis(100);

async fn work(app: std::sync::Weak<App>, mut received: mpsc::Receiver<Request>) {
    let mut batch = Vec::new();
    while let Some(first) = received.recv().await {
        tokio::time::sleep(BATCH_DELAY).await;
        batch.push(first);
        while let Ok(next) = received.try_recv() {
            batch.push(next);
        }
        let Some(app) = app.upgrade() else { return };
        for request in batch.drain(..) {
            handle(&app, request).await;
        }
    }
}

async fn handle(app: &Arc<App>, request: Request) {
    let result = match request {
        Request::Password { username, client } => reset(app, &username, &client).await,
        Request::Username { email } => remind(app, &email).await,
    };
    match result {
        Ok(()) => {}
        // The hourly cap: the owner has the mail already.
        Err(error @ (Error::Throttled { .. } | Error::Rejected { .. })) => {
            tracing::info!("a recovery request was not mailed: {}", crate::error::ApiError::from(error).code)
        }
        Err(other) => {
            let api = crate::error::ApiError::from(other);
            tracing::warn!(code = api.code, "a recovery request failed");
        }
    }
}

async fn reset(app: &Arc<App>, username: &str, client: &Client) -> Result<(), Error> {
    let Ok(username) = Username::parse(username) else { return Ok(()) };
    let Some(row) = app.read_models.login_lookup(&username).await? else { return Ok(()) };
    if !matches!(row.status(), Status::Active | Status::Deactivated) {
        return Ok(());
    }
    let account = row.account_id;
    flow::send_reset(&app.accounts, &app.config.public_url, &app.ctx(), &as_user(account), account, client)
        .await
        .map_err(|e| app.refused(e))?;
    app.delivery.wake();
    tracing::info!(account = %account, "a password reset was asked for; its mail is queued");
    Ok(())
}

async fn remind(app: &Arc<App>, email: &str) -> Result<(), Error> {
    wait_for_index(app, &app.email_index).await?;
    let mut rows = Vec::new();
    for account in app.email_index.accounts(email).await? {
        if let Some(row) = app.read_models.account_view(account).await? {
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| a.username.cmp(&b.username));
    flow::remind_usernames(app, &rows).await
}

/// Waits (a little) until the index holds every account invited up to now.
async fn wait_for_index(app: &App, index: &EmailIndex) -> Result<(), Error> {
    let head = tenure_store::EventStore::head(&app.accounts.store).await?;
    let deadline = tokio::time::Instant::now() + INDEX_CATCH_UP;
    // The stored position may lag over events the index does not read; what a catch-up reached
    // is what counts.
    while index.catch_up(&app.accounts.store, &app.accounts.keys).await? < head
        && tokio::time::Instant::now() < deadline
    {}
    Ok(())
}
