-- The keys that sign OpenID Connect tokens, wrapped by the master key; a rotated key is kept
-- until the end of its grace period (dropped_at).
CREATE TABLE signing_keys (
    kid        text   PRIMARY KEY,
    wrapped    bytea  NOT NULL,
    created_at bigint NOT NULL,
    dropped_at bigint
);
