-- The Glue tables and view that template.yaml creates, as DDL, for those who deploy without the
-- template's Glue resources. Replace BUCKET, PREFIX and the org list, then run each statement
-- on its own (Athena runs one per query; engine version 3) in the database of your choice.
--
-- events_raw reads the raw trail (gzip NDJSON), events_compacted the compactor's Parquet
-- objects (one per org and day, under PREFIX/compacted/), and the view `events`, the one to
-- query, takes each (org, day) from exactly one of them. Its predicate C lists the compacted
-- days: `false` below (nothing compacted), and the compactor rewrites the view with the days it
-- has compacted. Without the compactor, leave it `false`: the raw trail holds every day.
--
-- `org` and `dt` are partition keys only (each record also carries `org`; the SerDe skips it).
-- Partition projection computes the partitions: no crawler, no MSCK REPAIR. Keys that start
-- with `_` (such as `_quarantine/`) are outside the projected locations and never read.
CREATE EXTERNAL TABLE IF NOT EXISTS events_raw (
  `account` string,
  `action` string,
  `action_description` string,
  `actor` string,
  `category` string,
  `collector` struct<ingested_at:string,window_from:string,window_to:string,run_id:string>,
  `data` map<string,string>,
  `event_id` string,
  `name` string,
  `timestamp` string
)
PARTITIONED BY (
  `org` string,
  `dt` string
)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://BUCKET/PREFIX/'
TBLPROPERTIES (
  'classification' = 'json',
  'projection.enabled' = 'true',
  'projection.org.type' = 'enum',
  'projection.org.values' = 'acme,example',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2021-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://BUCKET/PREFIX/org=${org}/dt=${dt}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS events_compacted (
  `account` string,
  `action` string,
  `action_description` string,
  `actor` string,
  `category` string,
  `collector` struct<ingested_at:string,window_from:string,window_to:string,run_id:string>,
  `data` map<string,string>,
  `event_id` string,
  `name` string,
  `timestamp` timestamp
)
PARTITIONED BY (
  `org` string,
  `dt` string
)
STORED AS PARQUET
LOCATION 's3://BUCKET/PREFIX/compacted/'
TBLPROPERTIES (
  'classification' = 'parquet',
  'projection.enabled' = 'true',
  'projection.org.type' = 'enum',
  'projection.org.values' = 'acme,example',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2021-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://BUCKET/PREFIX/compacted/org=${org}/dt=${dt}/'
);

CREATE OR REPLACE VIEW events AS
SELECT account, action, action_description, actor, category, collector, data, event_id, name, "timestamp", org, dt FROM events_raw WHERE NOT (false) UNION ALL SELECT account, action, action_description, actor, category, collector, data, event_id, name, to_iso8601(with_timezone("timestamp", 'UTC')) AS "timestamp", org, dt FROM events_compacted WHERE false;
