-- Every end of a session, numbered in commit order, for every gateway to forget the sessions it
-- keeps in memory (gateway sessions/ends.rs); swept ten minutes on.
CREATE TABLE session_ends (
    seq        bigserial PRIMARY KEY,
    id_digest  bytea,
    account_id uuid,
    keep       bytea,
    at         bigint NOT NULL
);
CREATE INDEX session_ends_at ON session_ends (at);
