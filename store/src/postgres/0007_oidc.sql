-- The keys that sign OpenID Connect tokens, wrapped by the master key; a rotated key is kept
-- until the end of its grace period (dropped_at).
CREATE TABLE signing_keys (
    kid        text   PRIMARY KEY,
    wrapped    bytea  NOT NULL,
    created_at bigint NOT NULL,
    dropped_at bigint
);

-- Authorization codes and refresh tokens, by the SHA-256 of what was handed out (the gateway's
-- tables; docs/oidc.md).
CREATE TABLE oidc_codes (
    digest     bytea  PRIMARY KEY,
    grant_json text   NOT NULL,
    expires    bigint NOT NULL,
    used       bigint NOT NULL
);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires);
CREATE TABLE oidc_refresh (
    digest     bytea  PRIMARY KEY,
    family     bytea  NOT NULL,
    account_id bytea  NOT NULL,
    grant_json text   NOT NULL,
    expires    bigint NOT NULL,
    used       bigint NOT NULL,
    revoked    bigint NOT NULL
);
CREATE INDEX oidc_refresh_family ON oidc_refresh (family);
CREATE INDEX oidc_refresh_account ON oidc_refresh (account_id);
