-- The `events` table of Athena, in DuckDB, over local output (or a copy of the bucket), so
-- that every infra/queries/*.sql runs unchanged on a laptop:
--
--   duckdb -c "SET VARIABLE output = './dockerhub-audit-data'" -c ".read infra/duckdb/events.sql" \
--          -c ".read infra/queries/events-per-day-per-category.sql"    (with ? bound by your client)
--
-- The whole translation between the two dialects is here:
-- 1. The view's columns and types are those of infra/athena/events-table.sql; `org` and `dt`
--    come from the folder names, as Athena's partitions do.
-- 2. Athena's from_iso8601_timestamp(s) is DuckDB's CAST(s AS TIMESTAMPTZ), read in UTC.
-- 3. Athena's element_at(map, key) (NULL when the key is absent) is DuckDB's map[key]; DuckDB's
--    own element_at returns a list.
SET TimeZone = 'UTC';
CREATE OR REPLACE TEMP MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ);
CREATE OR REPLACE TEMP MACRO element_at(m, k) AS m[k];
CREATE OR REPLACE VIEW events AS
SELECT
  account, action, action_description, actor, category, collector, data, event_id, name,
  "timestamp", org, dt
FROM read_json(
  getvariable('output') || '/org=*/dt=*/*.json.gz',
  format = 'newline_delimited',
  hive_partitioning = true,
  hive_types = {'org': 'VARCHAR', 'dt': 'VARCHAR'},
  columns = {
    'account': 'VARCHAR',
    'action': 'VARCHAR',
    'action_description': 'VARCHAR',
    'actor': 'VARCHAR',
    'category': 'VARCHAR',
    'collector': 'STRUCT(ingested_at VARCHAR, window_from VARCHAR, window_to VARCHAR, run_id VARCHAR)',
    'data': 'MAP(VARCHAR, VARCHAR)',
    'event_id': 'VARCHAR',
    'name': 'VARCHAR',
    'timestamp': 'VARCHAR'
  }
);
