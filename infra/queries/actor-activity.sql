-- Everything one actor did in a time range, in order.
-- Parameters: actor, from, to, from, to (from inclusive, to exclusive; ISO 8601 such as
-- 2026-11-01T00:00:00Z). The dates are repeated so that Athena reads only those partitions.
SELECT
  from_iso8601_timestamp("timestamp") AS event_time,
  org,
  action,
  name,
  data,
  action_description,
  event_id
FROM events
WHERE actor = ?
  AND dt BETWEEN substr(?, 1, 10) AND substr(?, 1, 10)
  AND from_iso8601_timestamp("timestamp") >= from_iso8601_timestamp(?)
  AND from_iso8601_timestamp("timestamp") < from_iso8601_timestamp(?)
ORDER BY event_time, event_id
