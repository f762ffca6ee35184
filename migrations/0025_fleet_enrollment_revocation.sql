-- Enrollment tokens can be listed and revoked over the fleet API
-- (docs/fleet.md, "Enrollment tokens"): a revoked token no longer enrolls a
-- device; the row stays for audit.
ALTER TABLE fleet_enrollment_tokens ADD COLUMN revoked_at TEXT;
ALTER TABLE fleet_enrollment_tokens ADD COLUMN revoked_by TEXT;
