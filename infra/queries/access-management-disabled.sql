-- Registry Access Management turned off, or Image Access Management turned off. Docker Hub
-- documents no action name for Image Access Management, so it is matched on the description.
-- Parameters: first day, last day (YYYY-MM-DD).
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
  AND (
    action = 'org.registry_access.disabled'
    OR (
      lower(action_description) LIKE '%image access%'
      AND (lower(action_description) LIKE '%disabl%' OR lower(action_description) LIKE '%turned off%')
    )
  )
ORDER BY event_time, event_id
