-- Organization access tokens created, updated and deleted, oldest first, so the lifecycle
-- of each token reads top to bottom. Parameters: first day, last day (YYYY-MM-DD).
SELECT
  from_iso8601_timestamp("timestamp") AS event_time,
  org,
  actor,
  action,
  name,
  data,
  action_description,
  event_id
FROM events
WHERE dt BETWEEN ? AND ?
  AND action LIKE 'org.access!_token.%' ESCAPE '!'
ORDER BY event_time, event_id
