-- The mail outbox: written in the same transaction as the events that call for mail, sent by
-- whichever gateway's delivery worker claims it first. The scheduler's delivery log is replaced
-- by it: a warning event and its mail are now one write.
CREATE TABLE outbox (
    id            uuid    PRIMARY KEY,
    account       uuid    NOT NULL,
    kind          text    NOT NULL,
    created_at    bigint  NOT NULL,
    -- Sealed with the account's data key; emptied once sent.
    body          bytea,
    attempts      integer NOT NULL DEFAULT 0,
    failures      integer NOT NULL DEFAULT 0,
    next_try_at   bigint  NOT NULL DEFAULT 0,
    claimed_until bigint  NOT NULL DEFAULT 0,
    last_error    text,
    sent_at       bigint,
    dropped       text
);
CREATE INDEX outbox_pending ON outbox (next_try_at) WHERE sent_at IS NULL AND dropped IS NULL;
CREATE INDEX outbox_account ON outbox (account, kind, created_at);
