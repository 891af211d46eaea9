-- Alerts beyond budgets (spend anomalies, token drift) fire once per window, whichever process
-- checks first: the one whose claim of the alert's id is inserted sends it.
CREATE TABLE alert_claims (
    id          TEXT PRIMARY KEY,
    claimed_at  TEXT NOT NULL
);
