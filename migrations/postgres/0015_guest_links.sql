-- PostgreSQL mirror of migrations/0015_guest_links.sql (same number, same tables and
-- columns; INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, AUTOINCREMENT -> identity).

-- Guest links: an invitation URL carrying a secret that admits its holder
-- to one room with one role until it expires, is revoked or is used up.
-- Only the SHA-256 of the (128-bit random) secret is stored.

CREATE TABLE guest_links (
    id          TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    name        TEXT,
    max_uses    BIGINT,
    uses        BIGINT NOT NULL DEFAULT 0,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    -- SQLite's implicit rowid, which the store orders these rows by
    -- (insertion order); the one column PostgreSQL has beyond SQLite's.
    rowid       BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX guest_links_room ON guest_links(room_id);
