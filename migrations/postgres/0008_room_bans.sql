-- PostgreSQL mirror of migrations/0008_room_bans.sql (same number, same tables and
-- columns; INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, AUTOINCREMENT -> identity).

-- Participants removed by a moderator stay out until their room token
-- expires, across restarts: the ban names the token (its SHA-256) and the
-- external id the token carried.

CREATE TABLE room_bans (
    id                TEXT PRIMARY KEY,
    room_id           TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    token_fingerprint TEXT,
    external_id       TEXT,
    expires_at        TEXT NOT NULL,
    created_at        TEXT NOT NULL
);

CREATE INDEX room_bans_room ON room_bans(room_id, expires_at);
