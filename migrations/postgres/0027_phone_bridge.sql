-- PostgreSQL mirror of migrations/0027_phone_bridge.sql (same number, same tables and
-- columns).

-- The SIP phone bridge (docs/phone.md): a room connected with
-- `POST /rooms/{room}/phone/connect` has one row here, holding the dial-in
-- extension callers reach at the server's SIP endpoint (unique over all
-- teams: a SIP trunk knows no team) and the PIN they enter by DTMF.
-- `phone/disconnect` deletes the row (and ends the room's calls).

CREATE TABLE phone_bridges (
    room_id     TEXT PRIMARY KEY REFERENCES rooms(id) ON DELETE CASCADE,
    team_id     TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    extension   TEXT NOT NULL UNIQUE,
    pin         TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
