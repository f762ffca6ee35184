-- Fleet webhooks (the Croom fleet API's `/webhooks`, docs/fleet.md) and
-- their durable delivery outbox, kept apart from the room API's webhooks
-- (those belong to a team; the fleet has none) but drained by the same
-- delivery worker with the same signing, retries and SSRF guard. A delivery
-- row is written in the transaction of the change that caused its event
-- (a device's status, an alert, a meeting), so an event is delivered (at
-- least once) exactly when its cause was committed.

CREATE TABLE fleet_webhooks (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    -- JSON array of event names (`device.online`, `alert.triggered`, ...).
    events          TEXT NOT NULL,
    secret          TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE fleet_webhook_deliveries (
    -- Also the delivery order of a webhook's events.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    webhook_id      TEXT NOT NULL REFERENCES fleet_webhooks(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    -- The exact JSON body sent (signed as is).
    payload         TEXT NOT NULL,
    -- pending | succeeded | failed
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_status_code INTEGER,
    last_error      TEXT,
    last_attempt_at TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX fleet_webhook_deliveries_webhook ON fleet_webhook_deliveries(webhook_id, seq);
CREATE INDEX fleet_webhook_deliveries_pending ON fleet_webhook_deliveries(status, webhook_id, seq);
