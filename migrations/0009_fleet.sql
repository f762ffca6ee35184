-- The Croom fleet management API (docs/fleet.md): fleet users, the server's
-- signing secret for their access tokens, enrolled devices, device groups,
-- configuration policies and one-time enrollment tokens. Secrets are stored
-- only as hashes (argon2 for passwords, SHA-256 for random tokens), except
-- the signing secret, which the server needs in the clear.

-- Server-wide fleet settings: `jwt_secret` (hex, generated on first start).
CREATE TABLE fleet_settings (
    name            TEXT PRIMARY KEY,
    value           TEXT NOT NULL
);

CREATE TABLE fleet_users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE COLLATE NOCASE,
    -- PHC string of an argon2id hash.
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- A group's id is a slug (`building-a`), the value devices and policy
-- targets name it by, as in the seed.
CREATE TABLE fleet_groups (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description     TEXT,
    -- JSON object (e.g. {"timezone": "America/New_York"}).
    config          TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE fleet_devices (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    model           TEXT,
    serial          TEXT,
    version         TEXT,
    -- online | offline (set by the appliance connection, not built yet).
    status          TEXT NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline')),
    group_id        TEXT REFERENCES fleet_groups(id) ON DELETE SET NULL,
    -- JSON array of strings.
    tags            TEXT NOT NULL DEFAULT '[]',
    -- SHA-256 (hex) of the device credential handed out at enrollment.
    credential_hash TEXT NOT NULL UNIQUE,
    last_seen       TEXT,
    enrolled_at     TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX fleet_devices_status ON fleet_devices(status, seq);
CREATE INDEX fleet_devices_group ON fleet_devices(group_id, seq);

CREATE TABLE fleet_enrollment_tokens (
    id              TEXT PRIMARY KEY,
    -- SHA-256 (hex) of the token.
    token_hash      TEXT NOT NULL UNIQUE,
    -- The group an enrolled device joins (optional).
    group_id        TEXT REFERENCES fleet_groups(id) ON DELETE SET NULL,
    -- The fleet user who made it (null: the CLI).
    created_by      TEXT REFERENCES fleet_users(id) ON DELETE SET NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT,
    -- The device it enrolled (kept after the device is deleted, for audit).
    device_id       TEXT,
    created_at      TEXT NOT NULL
);

CREATE TABLE fleet_policies (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    -- JSON object, the settings appliances apply.
    config          TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- A policy's targets: each row names one group or one device.
CREATE TABLE fleet_policy_targets (
    policy_id       TEXT NOT NULL REFERENCES fleet_policies(id) ON DELETE CASCADE,
    group_id        TEXT REFERENCES fleet_groups(id) ON DELETE CASCADE,
    device_id       TEXT REFERENCES fleet_devices(id) ON DELETE CASCADE,
    CHECK ((group_id IS NULL) != (device_id IS NULL))
);
CREATE UNIQUE INDEX fleet_policy_targets_policy_group
    ON fleet_policy_targets(policy_id, group_id) WHERE group_id IS NOT NULL;
CREATE UNIQUE INDEX fleet_policy_targets_policy_device
    ON fleet_policy_targets(policy_id, device_id) WHERE device_id IS NOT NULL;
CREATE INDEX fleet_policy_targets_group ON fleet_policy_targets(group_id);
CREATE INDEX fleet_policy_targets_device ON fleet_policy_targets(device_id);
