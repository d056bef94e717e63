-- What every gateway must see of a sign-in in progress (SPEC §9, §11): any gateway serves any
-- step. Ids and tokens are kept only as SHA-256 digests; authenticator keys not yet confirmed
-- are sealed (AEAD under a key derived from the master key). Rows expire and are swept.
-- Flows, offered keys and address counters last minutes: UNLOGGED spares every step a WAL flush,
-- and what a crash or a failover loses is a sign-in to start again.
CREATE UNLOGGED TABLE sign_in_flows (
    id_digest     bytea  PRIMARY KEY,
    username      text   NOT NULL,
    account_id    uuid,
    step          text   NOT NULL,
    sealed_secret bytea,
    started       bigint NOT NULL,
    expires       bigint NOT NULL
);
CREATE INDEX sign_in_flows_expires ON sign_in_flows (expires);

-- Authenticator keys shown and not yet confirmed: by invitation (digest) or account.
CREATE UNLOGGED TABLE offered_keys (
    slot          bytea  PRIMARY KEY,
    sealed_secret bytea  NOT NULL,
    expires       bigint NOT NULL
);
CREATE INDEX offered_keys_expires ON offered_keys (expires);

-- Failures against usernames nobody holds, throttled like real accounts: logged, since a real
-- account's throttle (its events) survives a crash too.
CREATE TABLE ghost_throttles (
    username     text   PRIMARY KEY,
    failures     bigint NOT NULL,
    locked_until bigint,
    expires      bigint NOT NULL
);
CREATE INDEX ghost_throttles_expires ON ghost_throttles (expires);

-- Failures per client address (GCRA: the theoretical arrival time of the next failure).
CREATE UNLOGGED TABLE address_failures (
    address text   PRIMARY KEY,
    tat     bigint NOT NULL
);
CREATE INDEX address_failures_tat ON address_failures (tat);
