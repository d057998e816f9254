//! Command-line flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{parse_duration, HumanBytes, HumanDuration, PollConfig};
use crate::hub::HubConfig;
use crate::types::Org;

#[derive(Debug, Parser)]
#[command(
    name = "dockerhub-audit",
    version,
    about = "Collects a Docker Hub organization's audit log, exactly once"
)]
pub struct Cli {
    /// Log lines as text for people or JSON for machines (always on stderr).
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text, global = true)]
    pub log_format: LogFormatArg,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

/// When `poll` and `verify` draw their progress line on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressWhen {
    /// When stderr is a terminal and the logs are text.
    Auto,
    /// Always, even into a file or a pipe (to capture it).
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collect new audit events for an organization (credentials from DOCKERHUB_USERNAME and DOCKERHUB_TOKEN).
    Poll(PollArgs),
    /// Show an organization's checkpoint: watermark and its age, last run, pending commit.
    Status(StatusArgs),
    /// Compare what is stored with what Docker Hub serves, day by day, as multisets of
    /// event ids (exit 0: nothing missing or duplicated; 1: something is; 2: usage error).
    Verify(VerifyArgs),
    /// Write each closed day (verified complete, past its late horizon) again as one Parquet
    /// object that queries read in place of its raw objects (a local output).
    Compact(CompactArgs),
    /// Checkpoint maintenance.
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
    /// Serve a Docker Hub stand-in on 127.0.0.1 until interrupted.
    Emulator(EmulatorArgs),
    /// Run the whole pipeline offline against the bundled emulator.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Where objects go: a folder, or s3://bucket/prefix (org=<org>/dt=<date>/... below it).
    #[arg(long, default_value = "./dockerhub-audit-data")]
    pub output: String,
    /// Where checkpoints go: a folder, or dynamodb://table [default: <output>/_checkpoints
    /// for a local output].
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// KMS key for s3:// output (default: the bucket's default encryption).
    #[arg(long)]
    pub kms_key_id: Option<String>,
    /// How long a dynamodb:// lease outlives a run that stopped renewing it (a crash), from
    /// 1s to 1h. Correctness does not depend on it; a short one lets runs overlap more.
    #[arg(long, default_value = "60s", value_parser = parse_lease_ttl)]
    pub lease_ttl: chrono::Duration,
    /// For s3:// output: the Glue database of the stack's view `events` (its GlueDatabase
    /// output), so a repair takes a compacted day off the view before writing into it and
    /// verify checks compacted days; `none` for a bucket without compaction.
    #[arg(long)]
    pub glue_database: Option<String>,
}

fn parse_lease_ttl(s: &str) -> Result<chrono::Duration, String> {
    let d = parse_duration(s)?;
    if d < chrono::Duration::seconds(1) || d > chrono::Duration::hours(1) {
        return Err(format!(
            "{s:?} is outside 1s to 1h; a lease of 60s suits most uses"
        ));
    }
    Ok(d)
}

impl StoreArgs {
    pub fn stores(&self) -> super::stores::Stores {
        super::stores::Stores {
            output: self.output.clone(),
            checkpoint: self.checkpoint.clone(),
            kms_key_id: self.kms_key_id.clone(),
            lease_ttl: self.lease_ttl.to_std().unwrap_or_default(),
            glue_database: self.glue_database.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct PollArgs {
    /// The organization (Docker Hub namespace).
    #[arg(long)]
    pub org: Org,
    /// A live line on stderr: how far the read has come, events written, requests, and any
    /// wait Docker Hub asks for. Logs and the summary stay as they are.
    #[arg(long, value_enum, default_value_t = ProgressWhen::Auto)]
    pub progress: ProgressWhen,
    #[command(flatten)]
    pub hub: HubArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// How far back the first run reaches.
    #[arg(long, default_value_t = HumanDuration(PollConfig::DEFAULT_LOOKBACK))]
    pub lookback: HumanDuration,
    /// Leave events younger than this for the next run.
    #[arg(long, default_value_t = HumanDuration(PollConfig::DEFAULT_LAG))]
    pub lag: HumanDuration,
    /// Re-read this far behind the watermark to catch late events.
    #[arg(long, default_value_t = HumanDuration(PollConfig::DEFAULT_OVERLAP))]
    pub overlap: HumanDuration,
    /// Stop starting new requests after this long; all written is committed.
    #[arg(long, value_parser = parse_duration)]
    pub max_duration: Option<chrono::Duration>,
    /// Events per commit (bounds memory).
    #[arg(long, default_value_t = PollConfig::DEFAULT_BATCH_EVENTS)]
    pub batch_events: usize,
    /// The most events one read of a window holds (bounds memory; a single second with
    /// more fails, saying so).
    #[arg(long, default_value_t = PollConfig::DEFAULT_READ_EVENTS)]
    pub max_read_events: usize,
    /// The most bytes of events one read of a window holds (bounds memory when Docker Hub
    /// sends large events; e.g. 16MiB, 512KiB).
    #[arg(long, default_value_t = HumanBytes(PollConfig::DEFAULT_READ_BYTES))]
    pub max_read_bytes: HumanBytes,
    /// A commit is made once its events take this many bytes (or --batch-events).
    #[arg(long, default_value_t = HumanBytes(PollConfig::DEFAULT_BATCH_BYTES))]
    pub batch_bytes: HumanBytes,
    /// Alert rules (TOML; `default` for the built-in set): an alert for each newly stored
    /// event a rule matches.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Where alerts go, as JSON lines: a file (appended), or - for stdout (the run's summary
    /// then goes to stderr, so stdout is only alerts).
    #[arg(long, default_value = "-", requires = "rules")]
    pub alerts_out: String,
}

/// Where Docker Hub is, how to sign in, and how to talk to it.
#[derive(Debug, Args)]
pub struct HubArgs {
    /// Docker Hub's address (point it at the emulator to try the tool): https, or plain
    /// http to this machine only (127.0.0.1, ::1, localhost).
    #[arg(long, default_value = PollConfig::DEFAULT_HUB_URL, value_parser = parse_hub_url)]
    pub hub_url: url::Url,
    /// Events asked for per page.
    #[arg(long, default_value_t = PollConfig::DEFAULT_PAGE_SIZE)]
    pub page_size: u32,
    /// Read the Docker Hub credentials from this Secrets Manager secret (JSON
    /// {"username", "token"}) instead of DOCKERHUB_USERNAME / DOCKERHUB_TOKEN.
    #[arg(long)]
    pub secret_id: Option<String>,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// Tuning of the Docker Hub client; the defaults suit the real Hub.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Timeout of one request, body included.
    #[arg(long, default_value_t = HumanDuration::from_std(HubConfig::DEFAULT_REQUEST_TIMEOUT))]
    pub request_timeout: HumanDuration,
    /// First backoff after a failure (doubles each time, with jitter).
    #[arg(long, default_value_t = HumanDuration::from_std(HubConfig::DEFAULT_RETRY_BASE))]
    pub retry_base: HumanDuration,
    /// Attempts per request on 5xx, timeouts and malformed answers.
    #[arg(long, default_value_t = HubConfig::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The organization (Docker Hub namespace).
    #[arg(long)]
    pub org: Org,
    /// A live line on stderr: how far the verification has come, requests, and any wait
    /// Docker Hub asks for. The day-by-day report stays as it is.
    #[arg(long, value_enum, default_value_t = ProgressWhen::Auto)]
    pub progress: ProgressWhen,
    #[command(flatten)]
    pub hub: HubArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Verify this far back from now.
    #[arg(long, default_value = "30d", value_parser = parse_duration, conflicts_with = "from")]
    pub since: chrono::Duration,
    /// Verify from this time (RFC 3339, or a date: 2026-11-01).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Verify up to this time (default and at most: the checkpoint's watermark).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Write the missing events (through the commit path, under the org's lease).
    #[arg(long)]
    pub repair: bool,
    /// Stop starting requests after this long (what was verified is reported).
    #[arg(long, value_parser = parse_duration)]
    pub max_duration: Option<chrono::Duration>,
}

/// A time: RFC 3339, or a date (its midnight, UTC).
fn parse_hub_url(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s.trim()).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    crate::hub::trust::check_hub_url(&u).map_err(|e| e.to_string())?;
    Ok(u)
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{s:?} is not a time; write 2026-11-01 or 2026-11-01T12:00:00Z"))
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The organization (Docker Hub namespace).
    #[arg(long)]
    pub org: Org,
    #[command(flatten)]
    pub store: StoreArgs,
    /// How long after a day ends it may still change; only older days are compacted.
    #[arg(long, default_value_t = HumanDuration(crate::compact::CompactConfig::DEFAULT_LATE_HORIZON))]
    pub late_horizon: HumanDuration,
    /// Compacted days this recent are compared with their raw objects again, and rebuilt if
    /// they differ (`--recheck 400d`: every compacted day).
    #[arg(long, default_value_t = HumanDuration(crate::compact::CompactConfig::DEFAULT_RECHECK))]
    pub recheck: HumanDuration,
    /// Stop starting days after this long (the rest waits for the next run).
    #[arg(long, value_parser = parse_duration)]
    pub max_duration: Option<chrono::Duration>,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Rebuild an organization's checkpoint from the stored objects (after losing it, or
    /// restoring an older one): the watermark and the ids the next run must not store again.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[arg(long)]
    pub org: Org,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The overlap the poller uses (how far back from the watermark ids are remembered).
    #[arg(long, default_value_t = HumanDuration(PollConfig::DEFAULT_OVERLAP))]
    pub overlap: HumanDuration,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["org", "all"])))]
pub struct StatusArgs {
    /// One org's checkpoint in detail.
    #[arg(long)]
    pub org: Option<Org>,
    /// Every org of the checkpoint store at once, as the watchdog sees them: which are stale
    /// and why. Exits with status 1 when one is.
    #[arg(long)]
    pub all: bool,
    /// With --all: data older than this is stale (the stack's WatermarkAgeAlarmMinutes).
    #[arg(long, default_value_t = HumanDuration(crate::watch::WatchConfig::DEFAULT_STALE_AFTER))]
    pub stale_after: HumanDuration,
    /// With --all: the orgs that should be collected (comma-separated); those without a
    /// checkpoint are stale (they never ran). Default: the orgs the store holds.
    #[arg(long, value_delimiter = ',')]
    pub orgs: Vec<Org>,
    /// With --org: a picture of the trail over the last N days, one line per day (its stored
    /// events, read back from the output, and ✓ on days inside the span the checkpoint
    /// records as verified complete). 0: none. On S3 it costs a listing per day and a read
    /// per object.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3660))]
    pub days: u32,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The organizations served, comma-separated or repeated; each has its own events (seed
    /// + its position), its own tokens and its own rate limit.
    #[arg(long, default_value = "acme", value_delimiter = ',')]
    pub org: Vec<String>,
    /// Accepted token (DOCKERHUB_TOKEN) of every org; the accepted username is the org name.
    #[arg(
        long,
        env = "EMULATOR_SECRET",
        default_value = "dckr_oat_emulator",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub secret: String,
    /// Events to generate.
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// Spread over this many days back from now.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The most events the server gives per page, whatever is asked.
    #[arg(long, default_value_t = 100)]
    pub page_cap: u32,
    /// Requests per minute before 429s (unlimited if absent).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Probability that a list request gets a fault.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Fault kinds to draw from (repeatable): 500, 502, 503, 429, truncated, malformed,
    /// wrong-types, invalid-utf8, huge, slow, expire-token.
    #[arg(long = "fault")]
    pub faults: Vec<String>,
    /// Fraction of events that appear only minutes after their timestamp.
    #[arg(long, default_value_t = 0.0)]
    pub late_fraction: f64,
    /// Fraction of events with identical copies in the same second.
    #[arg(long, default_value_t = 0.02)]
    pub twin_fraction: f64,
    /// New events per minute while running.
    #[arg(long, default_value_t = 0)]
    pub trickle_per_minute: u32,
    /// Lifetime of issued tokens.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub token_ttl: chrono::Duration,
    /// Timestamps with microseconds instead of whole seconds.
    #[arg(long)]
    pub fractional_timestamps: bool,
    /// Insert this many events inside the queried window while a client pages.
    #[arg(long, default_value_t = 0)]
    pub insert_while_paging: u32,
    /// Order events of the same second differently on every page (as SQL LIMIT/OFFSET over
    /// equal keys may).
    #[arg(long)]
    pub unstable_ties: bool,
    /// Cut each page short by up to this many events, offsets following the cut size.
    #[arg(long, default_value_t = 0)]
    pub page_size_varies: u32,
    /// Add a burst of this many events over the minute that ended two minutes before the
    /// start, with few distinct payloads (identical events share its seconds).
    #[arg(long, default_value_t = 0)]
    pub burst_events: u32,
    /// Give every event a `padding` field of this many characters (pages of megabytes).
    #[arg(long, default_value_t = 0)]
    pub event_padding: usize,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo writes (wiped first if it holds an earlier demo).
    #[arg(long, default_value = "./dockerhub-audit-demo")]
    pub dir: PathBuf,
    /// Events in the emulator's 90 days.
    #[arg(long, default_value_t = 3000)]
    pub events: usize,
}
