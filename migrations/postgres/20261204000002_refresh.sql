-- Refresh token families and tokens (tower_token_auth::refresh::SqlRefreshStore).
-- Tokens are kept only as SHA-256 hashes. Times are Unix seconds, spent_at_ms Unix milliseconds.

CREATE TABLE tta_refresh_families (
    family      TEXT PRIMARY KEY,
    sub         TEXT NOT NULL,
    scope       TEXT NOT NULL,
    -- RFC 7638 thumbprint of the DPoP key the family is bound to; NULL: unbound.
    jkt         TEXT,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    -- When the session began (the login's credentials were checked).
    created_at  BIGINT NOT NULL,
    -- The latest expiry of any of its tokens (extended by every rotation).
    expires_at  BIGINT NOT NULL
);

CREATE INDEX tta_refresh_families_sub ON tta_refresh_families (sub);
CREATE INDEX tta_refresh_families_expires_at ON tta_refresh_families (expires_at);

CREATE TABLE tta_refresh_tokens (
    -- SHA-256 of the whole token.
    hash        BYTEA PRIMARY KEY CHECK (length(hash) = 32),
    family      TEXT NOT NULL REFERENCES tta_refresh_families (family) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL,
    -- Once spent: when, and the hash of the token it was rotated to.
    spent_at_ms BIGINT,
    successor   BYTEA CHECK (length(successor) = 32)
);

CREATE INDEX tta_refresh_tokens_family ON tta_refresh_tokens (family);
CREATE INDEX tta_refresh_tokens_expires_at ON tta_refresh_tokens (expires_at);
