-- PostgreSQL mirror of migrations/0021_fleet_user_tokens.sql (same number, same tables and
-- columns; INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, AUTOINCREMENT -> identity).

-- Fleet users managed over the API (docs/fleet.md, "Users"): a password or
-- role change increments the user's token version, and an access token is
-- accepted only while the version it carries (`ver`) is the current one.
ALTER TABLE fleet_users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
