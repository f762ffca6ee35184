-- PostgreSQL mirror of migrations/0006_hands.sql (same number, same tables and
-- columns; INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, AUTOINCREMENT -> identity).

-- Raised hands, so REST sees what the room sees: set while a
-- participant's hand is up (in the order raised), NULL otherwise.

ALTER TABLE participants ADD COLUMN hand_raised_at TEXT;
