//! The tracker saved with the `$all` position it reflects, so that a start reads only the events
//! after it instead of the whole log. Saved every few minutes while the scheduler runs and when
//! it stops; in `scheduler.snapshot` beside the embedded store (written to a side file, synced,
//! then renamed over the old one), or in the `scheduler_snapshot` table on PostgreSQL (replaced
//! in one transaction). Either way a reader sees the old snapshot or the new one whole.
//!
//! A snapshot is only a shortcut. One that is missing, of another version, damaged (its SHA-256
//! does not match), or made from another log (the event it ends at is not in this log with the
//! same hash, say after a restore from backup) is passed over with one log line, and the start
//! replays the whole log as before.
//!
//! The format, little-endian: `TNRSCHED`, version (u32), the fold's fingerprint (8 bytes: what
//! the events mean to a lifecycle, `FOLD` and the event types; a build that folds otherwise
//! replays), next position (u64), the hash of the event before it (32 bytes, zeros for none),
//! the account count (u64), then per account its id
//! (16), last activity (i64 seconds, u32 nanoseconds), stage (u8) and warned (u8), and last the
//! SHA-256 of everything before it.

use std::io::{Read, Write};
use std::path::PathBuf;

use chrono::{DateTime, Duration};
use sha2::{Digest, Sha256};
use tenure_domain::{AccountId, Lifecycle, Stage};
use tenure_store::event_store::Position;
use uuid::Uuid;

use crate::Tracker;

const MAGIC: &[u8; 8] = b"TNRSCHED";
const VERSION: u32 = 1;
/// Raise when folding events into a `Lifecycle` changes meaning (`Lifecycle::apply`, the
/// calendar): snapshots made by the old fold are then passed over.
const FOLD: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 8 + 32 + 8;
const ENTRY: usize = 16 + 8 + 4 + 1 + 1;
/// Accounts per part written to PostgreSQL (about 3 MB).
const PART: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a scheduler snapshot")]
    NotOne,
    #[error("a snapshot of version {0}; this build reads version {VERSION}")]
    Version(u32),
    #[error("a snapshot made by a build that folds events otherwise")]
    Fold,
    #[error("the snapshot is damaged: {0}")]
    Damaged(&'static str),
    #[error("the snapshot cannot be read or written: {0}")]
    Io(String),
}

impl From<std::io::Error> for SnapshotError {
    fn from(error: std::io::Error) -> Self {
        SnapshotError::Io(error.to_string())
    }
}

fn pg(error: tokio_postgres::Error) -> SnapshotError {
    SnapshotError::Io(error.to_string())
}

/// What a snapshot holds besides the accounts: where the tracker stands in `$all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The first position the tracker has not folded.
    pub next: Position,
    /// The hash of the event at `next - 1` (zeros when `next` is 1).
    pub anchor: [u8; 32],
}

fn stage_byte(stage: Stage) -> u8 {
    match stage {
        Stage::Open => 0,
        Stage::Deactivated => 1,
        Stage::Deleted => 2,
        Stage::Done => 3,
    }
}

/// What the fold means: `FOLD` and the event types it reads.
fn fold_fingerprint() -> [u8; 8] {
    let mut digest = Sha256::new().chain_update(FOLD.to_le_bytes());
    for event_type in tenure_domain::lifecycle::EVENT_TYPES {
        digest.update(event_type.as_bytes());
        digest.update([0]);
    }
    digest.finalize()[..8].try_into().expect("8 bytes")
}

fn encode_header(mark: Mark, count: usize) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&fold_fingerprint());
    header.extend_from_slice(&mark.next.to_le_bytes());
    header.extend_from_slice(&mark.anchor);
    header.extend_from_slice(&(count as u64).to_le_bytes());
    header
}

fn encode_entry(id: AccountId, lifecycle: Lifecycle, out: &mut Vec<u8>) {
    out.extend_from_slice(id.0.as_bytes());
    out.extend_from_slice(&lifecycle.since.timestamp().to_le_bytes());
    out.extend_from_slice(&lifecycle.since.timestamp_subsec_nanos().to_le_bytes());
    out.push(stage_byte(lifecycle.stage));
    out.push(u8::from(lifecycle.warned));
}

/// The snapshot of a tracker, made a piece at a time so that it is never whole in memory.
struct Encoder<'a> {
    accounts: Box<dyn Iterator<Item = (AccountId, Lifecycle)> + Send + 'a>,
    header: Option<Vec<u8>>,
    digest: Option<Sha256>,
}

impl<'a> Encoder<'a> {
    fn new(tracker: &'a Tracker, mark: Mark) -> Encoder<'a> {
        Encoder {
            accounts: Box::new(tracker.accounts()),
            header: Some(encode_header(mark, tracker.len())),
            digest: Some(Sha256::new()),
        }
    }

    /// The next piece of at most `PART` accounts; the last one ends with the digest.
    fn next_piece(&mut self) -> Option<Vec<u8>> {
        let mut digest = self.digest.take()?;
        let mut piece = self.header.take().unwrap_or_default();
        for (id, lifecycle) in self.accounts.by_ref().take(PART) {
            encode_entry(id, lifecycle, &mut piece);
        }
        digest.update(&piece);
        if piece.len() < PART * ENTRY {
            piece.extend_from_slice(&digest.finalize());
        } else {
            self.digest = Some(digest);
        }
        Some(piece)
    }
}

/// Reads a snapshot fed in pieces of any size into a tracker.
pub struct Decoder {
    quarantine: Duration,
    digest: Sha256,
    /// Bytes of an unfinished header, entry or trailing digest.
    carry: Vec<u8>,
    /// How many bytes the snapshot has, as its store says.
    length: u64,
    mark: Option<Mark>,
    left: u64,
    tracker: Option<Tracker>,
    done: bool,
}

impl Decoder {
    /// A decoder for a snapshot of `length` bytes.
    pub fn new(quarantine: Duration, length: u64) -> Decoder {
        Decoder {
            quarantine,
            digest: Sha256::new(),
            carry: Vec::new(),
            length,
            mark: None,
            left: 0,
            tracker: None,
            done: false,
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), SnapshotError> {
        while !bytes.is_empty() {
            if self.done {
                return Err(SnapshotError::Damaged("bytes after the end"));
            }
            let want = match (&self.mark, self.left) {
                (None, _) => HEADER,
                (Some(_), 0) => 32,
                (Some(_), _) => ENTRY,
            };
            // Whole entries straight from the input; the rest through `carry`.
            if self.carry.is_empty() && want == ENTRY && bytes.len() >= ENTRY {
                let whole = (bytes.len() / ENTRY).min(usize::try_from(self.left).unwrap_or(usize::MAX));
                let (entries, rest) = bytes.split_at(whole * ENTRY);
                self.digest.update(entries);
                for entry in entries.chunks_exact(ENTRY) {
                    self.entry(entry)?;
                }
                bytes = rest;
                continue;
            }
            let take = (want - self.carry.len()).min(bytes.len());
            self.carry.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.carry.len() == want {
                let piece = std::mem::take(&mut self.carry);
                match want {
                    HEADER => {
                        self.digest.update(&piece);
                        self.header(&piece)?;
                    }
                    32 if self.mark.is_some() && self.left == 0 => {
                        let expected: [u8; 32] = self.digest.clone().finalize().into();
                        if piece != expected {
                            return Err(SnapshotError::Damaged("its SHA-256 does not match"));
                        }
                        self.done = true;
                    }
                    _ => {
                        self.digest.update(&piece);
                        self.entry(&piece)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn header(&mut self, header: &[u8]) -> Result<(), SnapshotError> {
        if &header[..8] != MAGIC {
            return Err(SnapshotError::NotOne);
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        if header[12..20] != fold_fingerprint() {
            return Err(SnapshotError::Fold);
        }
        let next = u64::from_le_bytes(header[20..28].try_into().expect("8 bytes"));
        let anchor: [u8; 32] = header[28..60].try_into().expect("32 bytes");
        let count = u64::from_le_bytes(header[60..68].try_into().expect("8 bytes"));
        if count > u64::from(u32::MAX) || next == 0 {
            return Err(SnapshotError::Damaged("an impossible header"));
        }
        // Room for what the header announces, but never more than the bytes there are could
        // hold: a damaged count must not make the start allocate gigabytes.
        let room = count.min(self.length.saturating_sub(HEADER as u64) / ENTRY as u64);
        self.mark = Some(Mark { next, anchor });
        self.left = count;
        self.tracker = Some(Tracker::with_capacity(self.quarantine, usize::try_from(room).unwrap_or(0)));
        Ok(())
    }

    fn entry(&mut self, entry: &[u8]) -> Result<(), SnapshotError> {
        let id = AccountId(Uuid::from_bytes(entry[..16].try_into().expect("16 bytes")));
        let seconds = i64::from_le_bytes(entry[16..24].try_into().expect("8 bytes"));
        let nanos = u32::from_le_bytes(entry[24..28].try_into().expect("4 bytes"));
        // Within what the tracker counts in (nanoseconds, 1677 to 2262), with decades to spare.
        let since = DateTime::from_timestamp(seconds, nanos)
            .filter(|t| nanos < 1_000_000_000 && (1970..=2200).contains(&chrono::Datelike::year(t)))
            .ok_or(SnapshotError::Damaged("a time out of range"))?;
        let stage = match entry[28] {
            0 => Stage::Open,
            1 => Stage::Deactivated,
            2 => Stage::Deleted,
            3 => Stage::Done,
            _ => return Err(SnapshotError::Damaged("an unknown stage")),
        };
        let warned = match entry[29] {
            0 => false,
            1 => true,
            _ => return Err(SnapshotError::Damaged("an unknown warning flag")),
        };
        let tracker = self.tracker.as_mut().ok_or(SnapshotError::Damaged("an entry before the header"))?;
        tracker.set(id, Lifecycle { since, stage, warned });
        self.left -= 1;
        Ok(())
    }

    /// The tracker and where it stands, once every byte was fed.
    pub fn finish(self) -> Result<(Mark, Tracker), SnapshotError> {
        match (self.done, self.mark, self.tracker) {
            (true, Some(mark), Some(tracker)) => Ok((mark, tracker)),
            _ => Err(SnapshotError::Damaged("it ends early")),
        }
    }
}

/// Where snapshots are kept.
#[derive(Clone)]
pub enum Snapshots {
    /// Not kept (benchmarks of the full replay, dry runs).
    Nowhere,
    File(PathBuf),
    Postgres(deadpool_postgres::Pool),
}

impl Snapshots {
    /// Beside the store `location` names.
    pub fn at(location: &tenure_store::Location) -> Result<Snapshots, SnapshotError> {
        Ok(match location {
            tenure_store::Location::Embedded { data_dir, .. } => Snapshots::File(data_dir.join("scheduler.snapshot")),
            tenure_store::Location::Postgres { url, .. } => {
                Snapshots::Postgres(tenure_store::postgres::pool(url).map_err(|e| SnapshotError::Io(e.to_string()))?)
            }
        })
    }

    /// The saved tracker and where it stands; `None` when none is saved.
    pub async fn load(&self, quarantine: Duration) -> Result<Option<(Mark, Tracker)>, SnapshotError> {
        match self {
            Snapshots::Nowhere => Ok(None),
            Snapshots::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let mut file = match std::fs::File::open(&path) {
                        Ok(file) => file,
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                        Err(error) => return Err(error.into()),
                    };
                    let mut decoder = Decoder::new(quarantine, file.metadata()?.len());
                    let mut buffer = vec![0u8; 1 << 20];
                    loop {
                        let read = file.read(&mut buffer)?;
                        if read == 0 {
                            return decoder.finish().map(Some);
                        }
                        decoder.feed(&buffer[..read])?;
                    }
                })
                .await
                .map_err(|e| SnapshotError::Io(e.to_string()))?
            }
            Snapshots::Postgres(pool) => {
                use futures_util::TryStreamExt;
                let client = pool.get().await.map_err(|e| SnapshotError::Io(e.to_string()))?;
                let length: i64 = client
                    .query_one("SELECT COALESCE(SUM(octet_length(body)), 0)::bigint FROM scheduler_snapshot", &[])
                    .await
                    .map_err(pg)?
                    .get(0);
                if length == 0 {
                    return Ok(None);
                }
                let mut decoder = Decoder::new(quarantine, length as u64);
                let none: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];
                let rows =
                    client.query_raw("SELECT body FROM scheduler_snapshot ORDER BY part", none).await.map_err(pg)?;
                futures_util::pin_mut!(rows);
                while let Some(row) = rows.try_next().await.map_err(pg)? {
                    decoder.feed(row.get::<_, &[u8]>(0))?;
                }
                decoder.finish().map(Some)
            }
        }
    }

    /// Saves `tracker` as standing at `mark`, replacing the snapshot before it whole.
    pub async fn save(&self, tracker: &Tracker, mark: Mark) -> Result<(), SnapshotError> {
        let mut pieces = Encoder::new(tracker, mark);
        match self {
            Snapshots::Nowhere => Ok(()),
            Snapshots::File(path) => {
                let side = path.with_extension("snapshot.partial");
                let mut file = std::io::BufWriter::new(std::fs::File::create(&side)?);
                while let Some(piece) = pieces.next_piece() {
                    // A few megabytes into the page cache: the sync below is what waits on the disk.
                    file.write_all(&piece)?;
                }
                let file = file.into_inner().map_err(|e| SnapshotError::Io(e.to_string()))?;
                let path = path.clone();
                tokio::task::spawn_blocking(move || -> Result<(), SnapshotError> {
                    file.sync_all()?;
                    std::fs::rename(&side, &path)?;
                    if let Some(dir) = path.parent() {
                        std::fs::File::open(dir)?.sync_all()?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| SnapshotError::Io(e.to_string()))?
            }
            Snapshots::Postgres(pool) => {
                let mut client = pool.get().await.map_err(|e| SnapshotError::Io(e.to_string()))?;
                let tx = client.transaction().await.map_err(pg)?;
                tx.execute("DELETE FROM scheduler_snapshot", &[]).await.map_err(pg)?;
                let insert =
                    tx.prepare("INSERT INTO scheduler_snapshot (part, body) VALUES ($1, $2)").await.map_err(pg)?;
                let mut part = 0i32;
                while let Some(piece) = pieces.next_piece() {
                    tx.execute(&insert, &[&part, &piece]).await.map_err(pg)?;
                    part += 1;
                }
                tx.commit().await.map_err(pg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn tracker(accounts: usize) -> Tracker {
        let mut tracker = Tracker::new(Duration::days(180));
        let now = Utc::now();
        for i in 0..accounts {
            let stage = [Stage::Open, Stage::Deactivated, Stage::Deleted, Stage::Done][i % 4];
            let since = now - Duration::seconds(i as i64 * 7919) + Duration::nanoseconds(i as i64);
            tracker.set(AccountId(Uuid::now_v7()), Lifecycle { since, stage, warned: i % 3 == 0 });
        }
        tracker
    }

    fn bytes(tracker: &Tracker, mark: Mark) -> Vec<u8> {
        let mut encoder = Encoder::new(tracker, mark);
        let mut all = Vec::new();
        while let Some(piece) = encoder.next_piece() {
            all.extend_from_slice(&piece);
        }
        all
    }

    #[test]
    fn a_snapshot_fed_in_pieces_of_any_size_gives_back_the_tracker_and_its_mark() {
        let original = tracker(2 * PART + 17);
        let mark = Mark { next: 98_765, anchor: [7; 32] };
        let all = bytes(&original, mark);
        assert_eq!(all.len(), HEADER + original.len() * ENTRY + 32);
        for step in [1, 29, 30, 31, 1 << 20, all.len()] {
            let mut decoder = Decoder::new(Duration::days(180), all.len() as u64);
            for piece in all.chunks(step) {
                decoder.feed(piece).unwrap();
            }
            let (got, decoded) = decoder.finish().unwrap();
            assert_eq!(got, mark);
            assert!(decoded.accounts().eq(original.accounts()), "pieces of {step}");
        }
    }

    #[test]
    fn a_count_beyond_the_bytes_there_are_is_damage_not_an_allocation() {
        let mut all = bytes(&tracker(3), Mark { next: 5, anchor: [0; 32] });
        all[60..68].copy_from_slice(&(u64::from(u32::MAX)).to_le_bytes());
        let mut decoder = Decoder::new(Duration::days(180), all.len() as u64);
        let fed = decoder.feed(&all);
        assert!(fed.is_err() || decoder.finish().is_err());
    }
}
