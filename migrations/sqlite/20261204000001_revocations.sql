-- tower-token-auth: revocations (docs/sql.md).
-- One row per revoked token (kind 't', id = jti), session ('s', id = sid) or user ('u', id = sub:
-- every token of that user issued at or before before_s). A row may be purged once until_s
-- (Unix seconds) and the verifier's leeway have passed: every token it covers has expired.
-- seq orders the writes for the processes that share the file and poll it:
-- tta_revocation_seq hands out one number per write, never reused, even after a purge.
CREATE TABLE tta_revocations (
    kind       TEXT    NOT NULL CHECK (kind IN ('t', 's', 'u')),
    id         TEXT    NOT NULL,
    sub        TEXT,
    before_s   INTEGER NOT NULL DEFAULT 0,
    until_s    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),
    PRIMARY KEY (kind, id)
);
CREATE INDEX tta_revocations_until ON tta_revocations (until_s);
CREATE INDEX tta_revocations_seq ON tta_revocations (seq);
CREATE TABLE tta_revocation_seq (n INTEGER NOT NULL);
INSERT INTO tta_revocation_seq (n) VALUES (0);
