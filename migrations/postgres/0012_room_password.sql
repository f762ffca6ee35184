-- PostgreSQL mirror of migrations/0012_room_password.sql (same number, same tables and
-- columns; INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, AUTOINCREMENT -> identity).

-- Room passwords: the argon2id PHC hash (per-hash salt) of the password a
-- name-only join must present; NULL when the room has none. Never returned
-- by the API (which shows only `has_password`).

ALTER TABLE rooms ADD COLUMN password_hash TEXT;
