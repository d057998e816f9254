-- Repositories whose visibility changed to public. Docker Hub does not document the keys of
-- `data` for this action, so the description is checked too.
-- Parameters: first day, last day (YYYY-MM-DD).
SELECT
  from_iso8601_timestamp("timestamp") AS event_time,
  org,
  actor,
  name AS repository,
  data,
  action_description,
  event_id
FROM events
WHERE dt BETWEEN ? AND ?
  AND action = 'repo.change_privacy'
  AND (
    lower(element_at(data, 'privacy')) = 'public'
    OR lower(element_at(data, 'visibility')) = 'public'
    OR lower(action_description) LIKE '%to public%'
  )
ORDER BY event_time, event_id
