-- Software updates for appliances (the Croom fleet API's `/updates`,
-- docs/fleet.md "Updates"): the releases an admin has published, and staged
-- deployments of one release to devices (a canary first, then batches; each
-- batch waits until its devices report the new version in their heartbeats,
-- and a failure halts the rest). The runner's state is all here, so a
-- deployment carries on after a restart.

CREATE TABLE fleet_releases (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    version         TEXT NOT NULL UNIQUE,
    notes           TEXT,
    created_at      TEXT NOT NULL
);

CREATE TABLE fleet_deployments (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    version         TEXT NOT NULL REFERENCES fleet_releases(version),
    -- scheduled | running | completed | halted | cancelled
    status          TEXT NOT NULL,
    -- Not before this time (RFC 3339).
    schedule        TEXT NOT NULL,
    canary          INTEGER NOT NULL,
    batch_size      INTEGER NOT NULL,
    -- Why it halted.
    reason          TEXT,
    created_by      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    finished_at     TEXT
);
CREATE INDEX fleet_deployments_active ON fleet_deployments(status, schedule);

CREATE TABLE fleet_deployment_devices (
    deployment_id   TEXT NOT NULL REFERENCES fleet_deployments(id) ON DELETE CASCADE,
    device_id       TEXT NOT NULL REFERENCES fleet_devices(id) ON DELETE CASCADE,
    -- Rollout order (the canary first).
    position        INTEGER NOT NULL,
    -- pending | sent | installed | confirmed | failed | skipped
    status          TEXT NOT NULL DEFAULT 'pending',
    detail          TEXT,
    -- When the update was sent (confirmation is timed from here).
    sent_at         TEXT,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (deployment_id, device_id)
);
