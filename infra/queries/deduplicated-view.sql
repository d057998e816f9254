-- Creates the view events_deduplicated: each event once by (org, event_id), whatever copies
-- a repair or an operator left in the bucket. Run once; query the view like the table.
CREATE OR REPLACE VIEW events_deduplicated AS
SELECT
  account, action, action_description, actor, category, collector, data, event_id, name,
  "timestamp", org, dt
FROM (
  SELECT
    *,
    row_number() OVER (PARTITION BY org, event_id ORDER BY collector.ingested_at) AS copy
  FROM events
)
WHERE copy = 1
