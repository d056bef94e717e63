-- Issue 16: where each session was started, for the sessions list in My Profile; and the keyed
-- digests of email addresses that find the usernames an address holds (SPEC §10), a read model
-- the gateways keep from the log and erase with the account.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS client_address text;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS user_agent text;
CREATE TABLE email_index (
    digest     bytea NOT NULL,
    account_id uuid  NOT NULL,
    PRIMARY KEY (digest, account_id)
);
CREATE INDEX email_index_account ON email_index (account_id);
CREATE TABLE email_index_position (
    id       integer PRIMARY KEY CHECK (id = 1),
    position bigint  NOT NULL
);
INSERT INTO email_index_position (id, position) VALUES (1, 0);
