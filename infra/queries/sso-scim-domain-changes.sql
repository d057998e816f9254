-- SSO connections (created, changed, deleted, enforcement, SCIM, JIT, connection type),
-- SSO domains (added, verified, deleted, auto-provisioning) and organization policies.
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
    action LIKE 'enterprise.sso.%'
    OR action LIKE 'enterprise.setting.policy.%'
    OR action LIKE 'org.domain.%'
  )
ORDER BY event_time, event_id
