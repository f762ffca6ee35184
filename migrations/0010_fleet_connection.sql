-- The appliance's live connection to the fleet API (docs/fleet.md): the
-- health figures of its latest heartbeat (the seed's `health` object,
-- JSON: cpu_percent, memory_percent, temperature, disk_percent, uptime).
-- `status` and `last_seen` (0009) are now kept by the connection: `online`
-- while the device's socket is open and heartbeating, `offline` otherwise.
ALTER TABLE fleet_devices ADD COLUMN health TEXT;
