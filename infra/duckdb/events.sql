-- The `events` view of Athena, in DuckDB, over local output (or a copy of the bucket), so
-- that every infra/queries/*.sql runs unchanged on a laptop:
--
--   duckdb -c "SET VARIABLE output = './dockerhub-audit-data'" -c ".read infra/duckdb/events.sql" \
--          -c ".read infra/queries/events-per-day-per-category.sql"    (with ? bound by your client)
--
-- As in Athena, a day comes from exactly one side: the compacted days are those with a file
-- <output>/compacted/org=X/dt=D/events.parquet, read from that file alone; every other day is
-- read from its raw objects <output>/org=X/dt=D/*.json.gz.
--
-- The view is a snapshot of the days, taken when this file is read: which days are compacted,
-- and which raw days there are. Read it again after a compaction (a day compacted since is
-- otherwise still read from its raw objects, which hold the same events; a compacted file
-- removed since makes the view fail) and to see a day that began since (objects added to a
-- day already there are seen). Each raw day is read through its own folder, not one pattern
-- over the whole trail: DuckDB lists every object a pattern matches on every query, before
-- pruning by folder, which over months of 5-minute objects costs more than the compacted
-- days themselves. `SET VARIABLE raw_only = true` before reading it ignores the compacted
-- files and reads every day from its raw objects, to check the one against the other.
--
-- The whole translation between the two dialects is here:
-- 1. The view's columns and types are those of infra/athena/events-table.sql; `org` and `dt`
--    come from the folder names, as Athena's partitions do. The compacted files hold
--    `timestamp` as a TIMESTAMP WITH TIME ZONE: the view gives it back as ISO 8601 text in
--    UTC, as Athena's view does with to_iso8601 (with microseconds rather than milliseconds;
--    the same instant).
-- 2. Athena's from_iso8601_timestamp(s) is DuckDB's CAST(s AS TIMESTAMPTZ), read in UTC.
-- 3. Athena's element_at(map, key) (NULL when the key is absent) is DuckDB's map[key]; DuckDB's
--    own element_at returns a list.
-- 4. DuckDB fails on a read_json or read_parquet of no file at all, so the view's text is built
--    here from the files present, held in the variable events_sql, and run by query().
SET TimeZone = 'UTC';
CREATE OR REPLACE TEMP MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ);
CREATE OR REPLACE TEMP MACRO element_at(m, k) AS m[k];
CREATE OR REPLACE TEMP MACRO events_sql_text(s) AS '''' || replace(s, '''', '''''') || '''';

-- The compacted days: (file, org, dt) of each compacted file present now.
SET VARIABLE events_compacted = (
  SELECT coalesce(list({
    'file': file,
    'org': regexp_extract(file, '/org=([^/]*)/dt=([^/]*)/events\.parquet$', 1),
    'dt': regexp_extract(file, '/org=([^/]*)/dt=([^/]*)/events\.parquet$', 2)
  } ORDER BY file), [])
  FROM glob(getvariable('output') || '/compacted/org=*/dt=*/events.parquet')
  WHERE NOT coalesce(getvariable('raw_only'), false)
);

-- C: the compacted (org, day) pairs, as in Athena's view: runs of consecutive days as ranges,
-- (org = 'X' AND (dt BETWEEN 'D1' AND 'D2' OR dt = 'D3')) OR ...; false if none. (Ranges rather
-- than a list of days: DuckDB tests C against the folder of each raw object it lists, and a
-- long IN list costs it ten times as much per object.)
SET VARIABLE events_compacted_predicate = (
  SELECT coalesce(string_agg('(org = ' || events_sql_text(org) || ' AND (' || days || '))', ' OR ' ORDER BY org), 'false')
  FROM (
    SELECT org, string_agg(CASE
      WHEN first = last THEN 'dt = ' || events_sql_text(first)
      ELSE 'dt BETWEEN ' || events_sql_text(first) || ' AND ' || events_sql_text(last)
    END, ' OR ' ORDER BY first) AS days
    FROM (
      SELECT org, island, min(dt) AS first, max(dt) AS last
      FROM (
        SELECT org, dt, CASE
          WHEN day IS NULL THEN 'not a day: ' || dt
          ELSE (day - (row_number() OVER (PARTITION BY org, day IS NULL ORDER BY dt))::INTEGER)::VARCHAR
        END AS island
        FROM (
          SELECT c.org AS org, c.dt AS dt, CASE
            WHEN regexp_full_match(c.dt, '[0-9]{4}-[0-9]{2}-[0-9]{2}') THEN try_strptime(c.dt, '%Y-%m-%d')::DATE
          END AS day
          FROM (SELECT unnest(getvariable('events_compacted')) AS c)
        )
      )
      GROUP BY org, island
    )
    GROUP BY org
  )
);

-- The raw days that are not compacted: the folder of each.
SET VARIABLE events_raw_days = (
  SELECT coalesce(list(folder ORDER BY folder), [])
  FROM (
    SELECT DISTINCT parse_dirpath(file) AS folder
    FROM glob(getvariable('output') || '/org=*/dt=*/*.json.gz')
  )
  WHERE regexp_extract(folder, '/(org=[^/]*/dt=[^/]*)$', 1) NOT IN (
    SELECT 'org=' || c.org || '/dt=' || c.dt FROM (SELECT unnest(getvariable('events_compacted')) AS c)
  )
);

SET VARIABLE events_sql = (
  SELECT coalesce(
    string_agg(branch, ' UNION ALL ' ORDER BY position),
    $$SELECT NULL::VARCHAR AS account, NULL::VARCHAR AS action,
      NULL::VARCHAR AS action_description, NULL::VARCHAR AS actor, NULL::VARCHAR AS category,
      NULL::STRUCT(ingested_at VARCHAR, window_from VARCHAR, window_to VARCHAR, run_id VARCHAR) AS collector,
      NULL::MAP(VARCHAR, VARCHAR) AS data, NULL::VARCHAR AS event_id, NULL::VARCHAR AS name,
      NULL::VARCHAR AS "timestamp", NULL::VARCHAR AS org, NULL::VARCHAR AS dt
    WHERE false$$
  )
  FROM (
    -- The raw days, less the compacted ones (C again, as in Athena's view).
    SELECT 1 AS position, replace(replace($$
      SELECT
        account, action, action_description, actor, category, collector, data, event_id, name,
        "timestamp", org, dt
      FROM read_json(
        [@folders@],
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
      )
      WHERE NOT (@compacted@)$$,
      '@folders@', (SELECT string_agg(events_sql_text(f || '/*.json.gz'), ', ' ORDER BY f)
                    FROM (SELECT unnest(getvariable('events_raw_days')) AS f))),
      '@compacted@', getvariable('events_compacted_predicate')) AS branch
    WHERE len(getvariable('events_raw_days')) > 0
    UNION ALL
    -- The compacted days, each from its one file.
    SELECT 2, replace(replace($$
      SELECT
        account::VARCHAR AS account, action::VARCHAR AS action,
        action_description::VARCHAR AS action_description, actor::VARCHAR AS actor,
        category::VARCHAR AS category,
        collector::STRUCT(ingested_at VARCHAR, window_from VARCHAR, window_to VARCHAR, run_id VARCHAR) AS collector,
        data::MAP(VARCHAR, VARCHAR) AS data, event_id::VARCHAR AS event_id, name::VARCHAR AS name,
        strftime(timezone('UTC', "timestamp"), '%Y-%m-%dT%H:%M:%S.%fZ') AS "timestamp",
        org, dt
      FROM read_parquet(
        [@files@],
        hive_partitioning = true,
        hive_types = {'org': 'VARCHAR', 'dt': 'VARCHAR'}
      )
      WHERE @compacted@$$,
      '@files@', (SELECT string_agg(events_sql_text(c.file), ', ' ORDER BY c.file)
                  FROM (SELECT unnest(getvariable('events_compacted')) AS c))),
      '@compacted@', getvariable('events_compacted_predicate'))
    WHERE len(getvariable('events_compacted')) > 0
  )
);

CREATE OR REPLACE VIEW events AS SELECT * FROM query(getvariable('events_sql'));
