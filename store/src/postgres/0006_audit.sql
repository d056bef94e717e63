-- The Merkle tree over the log (ADR 0016): each event's leaf beside it, the roots of complete
-- subtrees at every eighth level, the frontier in the head row (guarded by the lock that numbers
-- events), the signed tree heads, and the key that signs them, wrapped by the master key.
ALTER TABLE events ADD COLUMN leaf bytea;
ALTER TABLE head ADD COLUMN tree bytea NOT NULL DEFAULT decode('0000000000000000', 'hex');

CREATE TABLE merkle_nodes (
    level smallint NOT NULL,
    idx   bigint   NOT NULL,
    hash  bytea    NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE tree_heads (
    tree_size bigint PRIMARY KEY,
    root_hash bytea  NOT NULL,
    timestamp bigint NOT NULL,
    key_id    bytea  NOT NULL,
    signature bytea  NOT NULL
);

CREATE TABLE log_keys (
    key_id     bytea  PRIMARY KEY,
    wrapped    bytea  NOT NULL,
    created_at bigint NOT NULL
);
