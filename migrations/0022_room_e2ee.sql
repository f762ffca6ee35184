-- End-to-end encryption (docs/e2ee.md): the `e2ee_enabled` room setting.
-- Settings live in the JSON `settings` column (and a team's
-- `default_settings`), so no column is added; existing rooms and team
-- defaults get the field written out as false, so that a stored object
-- says explicitly that its media is not end-to-end encrypted.

UPDATE rooms
   SET settings = json_set(settings, '$.e2ee_enabled', json('false'))
 WHERE json_valid(settings) AND json_extract(settings, '$.e2ee_enabled') IS NULL;

UPDATE teams
   SET default_settings = json_set(default_settings, '$.e2ee_enabled', json('false'))
 WHERE json_valid(default_settings)
   AND json_extract(default_settings, '$.e2ee_enabled') IS NULL;
