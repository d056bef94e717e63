-- Usernames nobody holds are throttled with the same guard as accounts (per client address, and
-- the account-wide brake), kept as JSON and replaced by compare-and-set on `version`.
DROP TABLE ghost_throttles;
CREATE TABLE ghost_guards (
    username text   PRIMARY KEY,
    guard    text   NOT NULL,
    version  bigint NOT NULL,
    expires  bigint NOT NULL
);
CREATE INDEX ghost_guards_expires ON ghost_guards (expires);
