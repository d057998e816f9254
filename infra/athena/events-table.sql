-- The Glue table that template.yaml creates, as DDL, for those who deploy without the
-- template's Glue resources. Replace BUCKET, PREFIX and the org list, then run it in Athena
-- (engine version 3) in the database of your choice.
--
-- `org` and `dt` are partition keys only (each record also carries `org`; the SerDe skips it).
-- Partition projection computes the partitions: no crawler, no MSCK REPAIR. Keys that start
-- with `_` (such as `_quarantine/`) are outside the projected locations and never read.
CREATE EXTERNAL TABLE IF NOT EXISTS events (
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
