-- The appliance's live connection to the fleet API (docs/fleet.md): the
-- health figures of its latest heartbeat (the seed's `health` object,
-- JSON: cpu_percent, memory_percent, temperature, disk_percent, uptime).
-- `status` and `last_seen` (0009) are now kept by the connection: `online`
-- while the device's socket is open and heartbeating, `offline` otherwise.
ALTER TABLE fleet_devices ADD COLUMN health TEXT;

-- Alerts raised by the server from rules over the connection and its
-- heartbeats: `offline` (no connection for N s), `temperature` and `disk`
-- (above a threshold). `active` -> `acknowledged` (by a fleet user) ->
-- `cleared` (the condition ended); at most one open (not cleared) alert per
-- device and kind.
CREATE TABLE fleet_alerts (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    device_id       TEXT NOT NULL REFERENCES fleet_devices(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('offline', 'temperature', 'disk')),
    severity        TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
    message         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'acknowledged', 'cleared')),
    -- The figure that raised it and the threshold (null for `offline`).
    value           REAL,
    threshold       REAL,
    triggered_at    TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT REFERENCES fleet_users(id) ON DELETE SET NULL,
    cleared_at      TEXT
);
CREATE UNIQUE INDEX fleet_alerts_open ON fleet_alerts(device_id, kind) WHERE status != 'cleared';
CREATE INDEX fleet_alerts_status ON fleet_alerts(status, seq);

-- What the appliance last reported about the configuration policies pushed
-- to it: the revision (a hash of the merged config), `applied` or `failed`
-- with the reason, and when.
ALTER TABLE fleet_devices ADD COLUMN policy_revision TEXT;
ALTER TABLE fleet_devices ADD COLUMN policy_status TEXT CHECK (policy_status IN ('applied', 'failed'));
ALTER TABLE fleet_devices ADD COLUMN policy_reason TEXT;
ALTER TABLE fleet_devices ADD COLUMN policy_reported_at TEXT;
