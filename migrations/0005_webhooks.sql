-- Webhooks and their durable delivery outbox. A delivery row is written in
-- the same transaction as the change that caused the event, so an event is
-- delivered (at least once) exactly when its cause was committed. Deliveries
-- deliberately do not reference rooms or sessions: room.deleted must outlive
-- its room.

CREATE TABLE webhooks (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name            TEXT,
    endpoint        TEXT NOT NULL,
    -- JSON array of event names exactly as subscribed (dotted or snake_case).
    events          TEXT NOT NULL,
    secret          TEXT,
    authorization_header TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX webhooks_team ON webhooks(team_id, seq);

CREATE TABLE webhook_deliveries (
    -- Also the delivery order of a webhook's events.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    team_id         TEXT NOT NULL,
    -- The event name as the webhook subscribed to it.
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
    -- The delivery this one repeats (POST .../redeliver).
    redelivery_of   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, seq);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(status, webhook_id, seq);
