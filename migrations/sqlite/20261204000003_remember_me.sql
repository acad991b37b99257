-- Persistent remember-me logins (tower_token_auth::remember_me::SqlRememberMeStore).
-- The columns of Spring Security's JdbcTokenRepositoryImpl (series, username, token,
-- last_used), except that `token` holds the SHA-256 of the token, never the token; then what
-- this crate adds: the previous token's hash for the grace window, times, the device's
-- User-Agent and the theft marker.

CREATE TABLE persistent_logins (
    series           TEXT PRIMARY KEY NOT NULL,
    username         TEXT NOT NULL,
    -- SHA-256 of the current token.
    token            BLOB NOT NULL CHECK (length(token) = 32),
    -- Unix seconds (SQLite has no timestamp type).
    last_used        INTEGER NOT NULL,
    -- SHA-256 of the token rotated away last; NULL before the first rotation.
    previous_token   BLOB CHECK (length(previous_token) = 32),
    -- When the token was last rotated, Unix milliseconds.
    rotated_at_ms    INTEGER NOT NULL,
    -- When the login was remembered, and when it stops working, Unix seconds.
    created          INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    user_agent       TEXT,
    -- Set (Unix milliseconds) when a stolen cookie was detected: the row is a theft marker.
    stolen_at_ms     INTEGER
);

CREATE INDEX persistent_logins_username ON persistent_logins (username);
CREATE INDEX persistent_logins_expires_at ON persistent_logins (expires_at);
