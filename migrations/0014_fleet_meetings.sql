-- Meetings appliances took part in (meeting.started / meeting.ended from
-- their heartbeats), for the fleet API's usage analytics.
CREATE TABLE fleet_meetings (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL REFERENCES fleet_devices(id) ON DELETE CASCADE,
    -- What the device said it is in (e.g. "convene").
    platform    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    -- NULL while it lasts.
    ended_at    TEXT
);
CREATE INDEX fleet_meetings_started ON fleet_meetings(started_at);
CREATE INDEX fleet_meetings_open ON fleet_meetings(device_id) WHERE ended_at IS NULL;
