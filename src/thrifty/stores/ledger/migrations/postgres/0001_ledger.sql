-- One row per model call; the same columns as the SQLite schema, with native types.
CREATE TABLE ledger (
    id                    TEXT PRIMARY KEY,
    ts                    TIMESTAMPTZ NOT NULL,
    request_id            TEXT,
    user_id               TEXT,
    team                  TEXT,
    feature               TEXT,
    key_id                TEXT,
    tags                  JSONB NOT NULL DEFAULT '[]',
    provider              TEXT,
    requested_model       TEXT NOT NULL,
    served_model          TEXT,
    input_tokens          BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens     BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens         BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens      BIGINT NOT NULL DEFAULT 0,
    cost_uncached_input   NUMERIC,
    cost_cache_read       NUMERIC,
    cost_cache_write      NUMERIC,
    cost_output           NUMERIC,
    cost_total            NUMERIC,                -- NULL: price unknown (never 0)
    counterfactual_cost   NUMERIC,
    savings               JSONB NOT NULL DEFAULT '{}',
    latency_ms            DOUBLE PRECISION,
    ttft_ms               DOUBLE PRECISION,
    status                TEXT NOT NULL,
    error                 TEXT,
    http_status           INTEGER,
    cache_status          TEXT,
    route                 TEXT,
    stream                BOOLEAN NOT NULL DEFAULT FALSE,
    batch                 BOOLEAN NOT NULL DEFAULT FALSE,
    details               JSONB NOT NULL DEFAULT '{}'
);
-- The ledger is written far more than it is read: one index, for the time windows every report
-- uses. Record ids are time-ordered (UUIDv7 layout), so the primary key grows at its end.
CREATE INDEX ledger_ts ON ledger (ts);
