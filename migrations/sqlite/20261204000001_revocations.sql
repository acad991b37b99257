-- tower-token-auth: revocations (docs/sql.md).
-- One row per revoked token (kind 't', id = jti), session ('s', id = sid) or user ('u', id = sub:
-- every token of that user issued at or before before_s). A row may be purged once until_s
-- (Unix seconds) and the verifier's leeway have passed: every token it covers has expired.
-- seq orders the writes for the processes that share the file and poll it:
-- token_revocation_seq hands out one number per write, never reused, even after a purge.
CREATE TABLE token_revocations (
    kind       TEXT    NOT NULL CHECK (kind IN ('t', 's', 'u')),
    id         TEXT    NOT NULL,
    sub        TEXT,
    before_s   INTEGER NOT NULL DEFAULT 0,
    until_s    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),
    PRIMARY KEY (kind, id)
);
CREATE INDEX token_revocations_until ON token_revocations (until_s);
CREATE INDEX token_revocations_seq ON token_revocations (seq);
CREATE TABLE token_revocation_seq (n INTEGER NOT NULL);
INSERT INTO token_revocation_seq (n) VALUES (0);
