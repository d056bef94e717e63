-- Used and expired refresh tokens are swept by their expiry (gateway_db::SWEEPS).
CREATE INDEX oidc_refresh_expires ON oidc_refresh (expires);
