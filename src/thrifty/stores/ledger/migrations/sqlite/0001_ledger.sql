-- One row per model call. Money is stored as exact decimal text (SQLite has no decimal type);
-- sums go through the decimal_sum() aggregate registered on every connection.
CREATE TABLE ledger (
    id                    TEXT PRIMARY KEY,
    ts                    TEXT NOT NULL,          -- ISO 8601, UTC, microseconds: sorts as text
    request_id            TEXT,
    user_id               TEXT,
    team                  TEXT,
    feature               TEXT,
    key_id                TEXT,
    tags                  TEXT NOT NULL DEFAULT '[]',
    provider              TEXT,
    requested_model       TEXT NOT NULL,
    served_model          TEXT,
    input_tokens          INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
    cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens         INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens      INTEGER NOT NULL DEFAULT 0,
    cost_uncached_input   TEXT,
    cost_cache_read       TEXT,
    cost_cache_write      TEXT,
    cost_output           TEXT,
    cost_total            TEXT,                   -- NULL: price unknown (never 0)
    counterfactual_cost   TEXT,
    savings               TEXT NOT NULL DEFAULT '{}',
    latency_ms            REAL,
    ttft_ms               REAL,
    status                TEXT NOT NULL,
    error                 TEXT,
    http_status           INTEGER,
    cache_status          TEXT,
    route                 TEXT,
    stream                INTEGER NOT NULL DEFAULT 0,
    batch                 INTEGER NOT NULL DEFAULT 0,
    details               TEXT NOT NULL DEFAULT '{}'
);
-- The ledger is written far more than it is read: one index, for the time windows every report
-- uses. Record ids are time-ordered (UUIDv7 layout), so the primary key grows at its end.
CREATE INDEX ledger_ts ON ledger (ts);
