-- Who joined, left, was invited or changed role; team membership; custom roles.
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
    action LIKE 'org.member.%'
    OR action LIKE 'org.team.member.%'
    OR action LIKE 'org.customrole.%'
  )
ORDER BY event_time, event_id
