-- The scheduler's tracker saved with the $all position it reflects (scheduler/src/snapshot.rs),
-- in parts of about 3 MB, replaced in one transaction.
CREATE TABLE scheduler_snapshot (
    part integer PRIMARY KEY,
    body bytea   NOT NULL
);
