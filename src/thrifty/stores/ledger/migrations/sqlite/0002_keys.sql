-- Virtual keys: only a SHA-256 of each secret is stored; the secret is shown once, at creation.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,          -- the first characters of the secret, to recognise it by
    user_id     TEXT,
    team        TEXT,
    feature     TEXT,
    note        TEXT,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
