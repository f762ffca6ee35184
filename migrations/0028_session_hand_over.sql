-- A cluster node that drains hands a room's open session over to the node
-- the room moves to (docs/deployment.md "Draining a node"). A recording
-- running at the move is stopped there (its files complete) and continues
-- as a new recording of the same session on the new node:
-- `handed_over_recording` holds who started it (`started_by`) until the
-- new node takes it. Restreams running at the move start again there:
-- `handed_over_restreams` holds their destinations as JSON, each stream
-- key sealed with the cluster secret (never stored in clear).

ALTER TABLE sessions ADD COLUMN handed_over_recording TEXT;
ALTER TABLE sessions ADD COLUMN handed_over_restreams TEXT;
