-- Raised hands, so REST sees what the room sees: set while a
-- participant's hand is up (in the order raised), NULL otherwise.

ALTER TABLE participants ADD COLUMN hand_raised_at TEXT;
