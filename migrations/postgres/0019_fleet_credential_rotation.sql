-- PostgreSQL mirror of migrations/0019_fleet_credential_rotation.sql (same number, same tables and
-- columns; INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, AUTOINCREMENT -> identity).

-- Device credential rotation (docs/fleet.md, "Credential rotation"): while a
-- rotation is under way the new credential's hash waits here, and both the
-- old and the new credential open the device's connection; the first use of
-- the new one (or the device's acknowledgement) makes it the credential and
-- retires the old one.
ALTER TABLE fleet_devices ADD COLUMN pending_credential_hash TEXT;
ALTER TABLE fleet_devices ADD COLUMN credential_rotated_at TEXT;
