-- PostgreSQL mirror of migrations/0022_room_e2ee.sql (same number, same tables and
-- columns; the settings columns are TEXT holding JSON objects).

-- End-to-end encryption (docs/e2ee.md): the `e2ee_enabled` room setting.
-- Settings live in the JSON `settings` column (and a team's
-- `default_settings`), so no column is added; existing rooms and team
-- defaults get the field written out as false, so that a stored object
-- says explicitly that its media is not end-to-end encrypted.

UPDATE rooms
   SET settings = jsonb_set(settings::jsonb, '{e2ee_enabled}', 'false'::jsonb)::text
 WHERE jsonb_typeof(settings::jsonb) = 'object'
   AND NOT (settings::jsonb ? 'e2ee_enabled');

UPDATE teams
   SET default_settings = jsonb_set(default_settings::jsonb, '{e2ee_enabled}', 'false'::jsonb)::text
 WHERE jsonb_typeof(default_settings::jsonb) = 'object'
   AND NOT (default_settings::jsonb ? 'e2ee_enabled');
