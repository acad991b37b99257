-- tower-token-auth: revocations (docs/sql.md).
-- One row per revoked token (kind 't', id = jti), session ('s', id = sid) or user ('u', id = sub:
-- every token of that user issued at or before before_s). A row may be purged once until_s
-- (Unix seconds) and the verifier's leeway have passed: every token it covers has expired.
CREATE TABLE tta_revocations (
    kind       CHAR(1)     NOT NULL CHECK (kind IN ('t', 's', 'u')),
    id         TEXT        NOT NULL,
    sub        TEXT,
    before_s   BIGINT      NOT NULL DEFAULT 0,
    until_s    BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);
CREATE INDEX tta_revocations_until ON tta_revocations (until_s);
