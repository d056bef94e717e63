-- Tenure's schema on PostgreSQL: the event log, the data keys, the sessions and the
-- scheduler's delivery log. `tenure_schema` holds the number of migrations applied.
CREATE TABLE tenure_schema (version bigint NOT NULL);
INSERT INTO tenure_schema VALUES (0);

CREATE TABLE events (
    position       bigint  PRIMARY KEY,
    stream         text    NOT NULL,
    version        bigint  NOT NULL,
    event_id       uuid    NOT NULL,
    event_type     text    NOT NULL,
    schema_version integer NOT NULL,
    recorded_at    bigint  NOT NULL,
    actor          text    NOT NULL,
    correlation_id uuid    NOT NULL,
    data           bytea   NOT NULL,
    prev_hash      bytea   NOT NULL,
    hash           bytea   NOT NULL,
    UNIQUE (stream, version)
);
-- Readers that want a few kinds of event out of many (the scheduler's replay).
CREATE INDEX events_type ON events (event_type, position);

-- The last position appended. Its row lock orders appends (ADR 0008).
CREATE TABLE head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint  NOT NULL
);
INSERT INTO head (position) VALUES (0);

-- An HMAC of the master key under a fixed purpose: lets a host tell that its master.key is the
-- one the keys below are wrapped with, without revealing anything about it.
CREATE TABLE master_key_check (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    mac      bytea   NOT NULL
);

-- Per-account data keys, wrapped by the master key, which never enters the database.
CREATE TABLE account_keys (
    account_id uuid  PRIMARY KEY,
    wrapped    bytea NOT NULL
);

-- Server-side sessions: only the SHA-256 of the cookie is kept.
CREATE TABLE sessions (
    id_digest  bytea  PRIMARY KEY,
    account_id uuid   NOT NULL,
    created_at bigint NOT NULL,
    last_seen  bigint NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

-- The scheduler's log of warning mails delivered, by the warning event's id.
CREATE TABLE delivered (
    event_id uuid   PRIMARY KEY,
    at       bigint NOT NULL
);
