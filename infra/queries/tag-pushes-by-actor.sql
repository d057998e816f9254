-- Tag pushes per actor (users, organization access tokens, dockersupport), most active first.
-- Parameters: first day, last day (YYYY-MM-DD).
SELECT
  actor,
  count(DISTINCT event_id) AS pushes,
  count(DISTINCT name) AS repositories,
  min(from_iso8601_timestamp("timestamp")) AS first_push,
  max(from_iso8601_timestamp("timestamp")) AS last_push
FROM events
WHERE dt BETWEEN ? AND ?
  AND action = 'repo.tag.push'
GROUP BY actor
ORDER BY pushes DESC, actor
