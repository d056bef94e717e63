//! The verifiable audit log over whichever backend holds the events: the tree's reads, signed
//! tree heads, and proofs. Heads are signed only for a tree that extends the last signed one.

pub mod proof_file;
pub mod verify;

use crate::backend::{Keys, Store};
use crate::event_store::{RecordedEvent, StoreError};
use crate::merkle::heads::{LogKey, SignedHead};
use crate::merkle::proofs::{self, ProofError, TreeSource};
use crate::merkle::{self, Frontier, Hash};

/// Which signed heads to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heads {
    All,
    Latest,
    OfSize(u64),
}

impl Store {
    /// The tree as the last append left it.
    pub async fn tree_frontier(&self) -> Result<Frontier, StoreError> {
        match self {
            Store::Sqlite(s) => s.read(|c| Ok(merkle::sqlite::frontier_at(c, crate::sqlite::current_head(c)?))).await?,
            Store::Postgres(s) => merkle::postgres::frontier(&pg_client(s).await?).await,
        }
    }

    /// Up to `limit` events after position `after`, each with the leaf stored beside it, for
    /// readers that check the log.
    pub async fn audit_page(&self, after: i64, limit: usize) -> Result<Vec<(RecordedEvent, Option<Hash>)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.read(move |c| Ok(merkle::sqlite::read_page(c, after, limit))).await?,
            Store::Postgres(s) => merkle::postgres::read_page(&pg_client(s).await?, after, limit as i64).await,
        }
    }

    /// Builds the tree again from the events (`tenure audit rebuild-tree`).
    pub async fn rebuild_tree(&self, progress: impl Fn(u64) + Send + Sync + 'static) -> Result<Frontier, StoreError> {
        match self {
            Store::Sqlite(s) => s.with_writer(move |c| merkle::sqlite::rebuild(c, &progress)).await,
            Store::Postgres(s) => merkle::postgres::rebuild(s.pool(), &progress).await,
        }
    }

    pub async fn signed_heads(&self, which: Heads) -> Result<Vec<SignedHead>, StoreError> {
        let (size, latest) = match which {
            Heads::All => (None, false),
            Heads::Latest => (None, true),
            Heads::OfSize(size) => (Some(size), false),
        };
        match self {
            Store::Sqlite(s) => s.read(move |c| merkle::sqlite::heads(c, size, latest)).await,
            Store::Postgres(s) => merkle::postgres::heads(&pg_client(s).await?, size, latest).await,
        }
    }

    async fn put_head(&self, head: SignedHead) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.with_writer(move |c| {
                    merkle::sqlite::put_head(c, &head)
                        .map_err(|e| crate::sqlite::write_error("cannot keep the signed head", &e))
                })
                .await
            }
            Store::Postgres(s) => merkle::postgres::put_head(&pg_client(s).await?, &head).await,
        }
    }

    /// The latest signed head, after signing one for the tree as it is now if it has grown
    /// since. A tree that does not extend the last signed head is refused, never signed.
    pub async fn sign_head(&self, key: &LogKey, timestamp_ms: u64) -> Result<SignedHead, StoreError> {
        // The head first, then the tree: another process may sign a larger head at any moment,
        // and a tree read before it would look shorter than that head without being so.
        let latest = self.signed_heads(Heads::Latest).await?.pop();
        let frontier = self.tree_frontier().await?;
        if let Some(latest) = &latest {
            if latest.tree_size == frontier.size() {
                return Ok(latest.clone());
            }
            let root = frontier.root();
            let consistent = match latest.tree_size {
                0 => true,
                size if size < frontier.size() => {
                    proofs::consistency(self, size, frontier.size()).await.ok().is_some_and(|path| {
                        proofs::verify_consistency((size, &latest.root_hash), (frontier.size(), &root), &path).is_ok()
                    })
                }
                _ => false,
            };
            if !consistent {
                return Err(StoreError::Corrupt(format!(
                    "the tree of {} events does not extend the signed head of {} events: it is not signed; \
                     run `tenure audit verify-store`",
                    frontier.size(),
                    latest.tree_size
                )));
            }
        }
        let head = key.sign(frontier.size(), frontier.root(), timestamp_ms);
        self.put_head(head.clone()).await?;
        // Another process may have signed this size first: its head is the one kept.
        Ok(self.signed_heads(Heads::OfSize(head.tree_size)).await?.pop().unwrap_or(head))
    }

    /// The audit path of the event at `position` in the tree of the first `tree_size` events.
    pub async fn inclusion_proof(&self, position: u64, tree_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.within_tree(tree_size).await?;
        if position == 0 {
            return Err(ProofError::OutOfRange { size: tree_size, what: "position 0".into() });
        }
        proofs::inclusion(self, position - 1, tree_size).await
    }

    /// The proof that the tree of `first` events is a prefix of the tree of `second`.
    pub async fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, ProofError> {
        self.within_tree(second).await?;
        proofs::consistency(self, first, second).await
    }

    pub(crate) async fn within_tree(&self, size: u64) -> Result<(), ProofError> {
        let covered = self.tree_frontier().await?.size();
        if size > covered {
            return Err(ProofError::OutOfRange { size: covered, what: format!("a tree of {size} events") });
        }
        Ok(())
    }
}

async fn pg_client(store: &crate::PgStore) -> Result<deadpool_postgres::Object, StoreError> {
    store.pool().get().await.map_err(crate::postgres::pool_error)
}

impl TreeSource for Store {
    async fn leaves(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        match self {
            Store::Sqlite(s) => s.read(move |c| merkle::sqlite::leaves(c, from, to)).await,
            Store::Postgres(s) => merkle::postgres::leaves(&pg_client(s).await?, from, to).await,
        }
    }

    async fn nodes(&self, level: u32, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        match self {
            Store::Sqlite(s) => s.read(move |c| merkle::sqlite::nodes(c, level, from, to)).await,
            Store::Postgres(s) => merkle::postgres::nodes(&pg_client(s).await?, level, from, to).await,
        }
    }
}

impl Keys {
    /// The key that signs tree heads, made now if the store has none.
    pub async fn log_key(&self) -> Result<LogKey, StoreError> {
        crate::on_backend!(Keys, self, k => k.log_key().await)
    }
}
