-- Events per day and category (repo, org, billing, enterprise, oidc, offload, ...).
-- Parameters: first day, last day (YYYY-MM-DD).
SELECT
  dt AS day,
  category,
  count(DISTINCT event_id) AS events
FROM events
WHERE dt BETWEEN ? AND ?
GROUP BY dt, category
ORDER BY day, category
