-- Feedback on answers (POST /v1/thrifty/feedback): one verdict a request, the latest kept. Finding
-- a request's rows needs an index on request_id (a feedback call names the request, not the row).
CREATE INDEX ledger_request ON ledger (request_id);
CREATE TABLE feedback (
    request_id   TEXT PRIMARY KEY,
    ts           TIMESTAMPTZ NOT NULL,   -- when the verdict came
    verdict      TEXT NOT NULL,          -- wrong | right
    tenant       TEXT,                   -- team:NAME or key:ID of the call (NULL: a gateway without keys)
    record_id    TEXT NOT NULL,          -- the ledger row of the answer judged
    cache_status TEXT,
    namespace    TEXT,                   -- the cache namespace of a cached answer
    similarity   DOUBLE PRECISION,                   -- a semantic hit's similarity
    route        TEXT,
    served_model TEXT,
    evicted      JSONB NOT NULL DEFAULT '[]',   -- the cache entries dropped: ["exact", "semantic"]
    note         TEXT
);
CREATE INDEX feedback_ts ON feedback (ts);
