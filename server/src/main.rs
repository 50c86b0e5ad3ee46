//! `callahead-server`: `serve` runs the server, `demo` plays a morning of
//! calls against it.

use callahead_server::api::limits::{Rate, RateLimits};
use callahead_server::config::ScaledTime;
use callahead_server::providers::lines::LineLimits;
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use callahead_server::providers::{self, ProviderChoice, ProviderConfig};
use callahead_server::secrets::{Keys, SecretKey};
use callahead_server::{RunningServer, ServerConfig};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "callahead-server", version, about = "Robot call-ahead for delivery couriers")]
struct Cli {
    /// Log lines as JSON objects (for a log collector) or as text. Colour
    /// codes only when the output is a terminal.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP + websocket server (the embedded telephony simulator,
    /// or a real provider: --telephony twilio|voximplant).
    Serve(Box<ServeArgs>),
    /// Copy the database while the server runs (online, consistent), then
    /// check the copy's integrity.
    Backup(BackupArgs),
    /// Print the OpenAPI 3 document (what `GET /openapi.json` serves).
    Openapi,
    /// The tamper-evident audit chain (docs/audit.md).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The nodes sharing the database and any stuck lease: work no live
    /// node renews or took over (docs/adr/0011). Exits 1 if one is stuck.
    Leases(LeasesArgs),
    /// Play a demo morning of calls against an in-process server.
    #[cfg(feature = "demo")]
    Demo(callahead_server::demo::DemoArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// SQLite database file (created if missing), or a PostgreSQL URL
    /// (postgres://user@host/db: docs/adr/0009, docs/deploy.md).
    #[arg(long, default_value = "./callahead.db")]
    db: PathBuf,
    /// Domain seconds per real second: above 1 the simulated customers ring,
    /// talk and get retried faster (load tests, demos). 1 in production.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Where domain time starts (RFC 3339, e.g. 2026-11-23T07:00:00Z) for
    /// demos and tests; default now. A restart never goes back before the
    /// log's last event.
    #[arg(long, value_name = "TIME")]
    clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Bootstraps an admin with this token (only its hash is stored).
    /// At least 32 characters. Changing or unsetting it revokes the previous one.
    #[arg(long, env = "CALLAHEAD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Encrypts webhook secrets at rest: 32 bytes, base64 (`openssl rand -base64 32`).
    #[arg(long, env = "CALLAHEAD_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// The key before a rotation: secrets sealed under it are re-encrypted.
    #[arg(long, env = "CALLAHEAD_SECRET_KEY_PREVIOUS", hide_env_values = true)]
    secret_key_previous: Option<String>,
    /// A bearer token Prometheus scrapes `/metrics` with (admin tokens work too).
    #[arg(long, env = "CALLAHEAD_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// A network webhooks may reach although it is private (repeatable),
    /// e.g. `10.0.0.0/8` for a CRM inside your own network.
    #[arg(long, value_name = "CIDR")]
    outbound_allow: Vec<ipnet::IpNet>,
    /// This node's name among the nodes sharing a PostgreSQL database
    /// (letters, digits, `.`, `_`, `-`; at most 64). Give each node its own
    /// and keep it across restarts: a node restarted under its name takes
    /// its unfinished work back at once instead of after its leases lapse
    /// (about 20 s). Default: a random name per start.
    #[arg(long, env = "CALLAHEAD_NODE_ID", value_parser = parse_node_id)]
    node_id: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    sim: SimArgs,
    #[command(flatten)]
    providers: ProviderArgs,
}

/// Real phone lines (docs/providers.md). Credentials come from the
/// environment, under each platform's usual names, and are never printed.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Providers")]
struct ProviderArgs {
    /// Who places the calls: simulator (default), twilio or voximplant.
    #[arg(long, default_value = "simulator")]
    telephony: ProviderChoice,
    /// Who sends the texts: simulator (default), twilio or voximplant.
    #[arg(long, default_value = "simulator")]
    messaging: ProviderChoice,
    /// The externally reachable base URL of this server: providers call it
    /// back there, and SMS links point to it (https://callahead.example).
    #[arg(long, env = "CALLAHEAD_PUBLIC_URL")]
    public_url: Option<String>,
    /// Twilio's API base (a regional edge, e.g. https://api.dublin.ie1.twilio.com).
    #[arg(long, default_value = providers::twilio::DEFAULT_API_BASE)]
    twilio_api_base: String,
    /// Voximplant's management API base.
    #[arg(long, default_value = providers::voximplant::DEFAULT_API_BASE)]
    voximplant_api_base: String,
    /// New calls per second the provider account takes (default: Twilio's
    /// 1; no limit for Voximplant unless given).
    #[arg(long)]
    calls_per_second: Option<f64>,
    /// Calls the account carries at once (default: no limit).
    #[arg(long)]
    max_concurrent_calls: Option<u32>,
    /// Twilio answering-machine detection on every call.
    #[arg(long)]
    machine_detection: bool,
    #[arg(long, env = "TWILIO_ACCOUNT_SID", hide = true)]
    twilio_account_sid: Option<String>,
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide = true, hide_env_values = true)]
    twilio_auth_token: Option<String>,
    #[arg(long, env = "TWILIO_API_KEY_SID", hide = true)]
    twilio_api_key_sid: Option<String>,
    #[arg(long, env = "TWILIO_API_KEY_SECRET", hide = true, hide_env_values = true)]
    twilio_api_key_secret: Option<String>,
    #[arg(long, env = "TWILIO_FROM_NUMBER", hide = true)]
    twilio_from_number: Option<String>,
    /// Path of the Voximplant service-account key file (JSON).
    #[arg(long, env = "VOXIMPLANT_CREDENTIALS", hide = true)]
    voximplant_credentials: Option<PathBuf>,
    /// The same key file's content, for platforms that pass secrets as values.
    #[arg(long, env = "VOXIMPLANT_KEY_JSON", hide = true, hide_env_values = true)]
    voximplant_key_json: Option<String>,
    #[arg(long, env = "VOXIMPLANT_RULE_ID", hide = true)]
    voximplant_rule_id: Option<String>,
    #[arg(long, env = "VOXIMPLANT_CALLER_ID", hide = true)]
    voximplant_caller_id: Option<String>,
    #[arg(long, env = "VOXIMPLANT_SMS_FROM", hide = true)]
    voximplant_sms_from: Option<String>,
}

/// Timeout of one request to a provider's API.
const PROVIDER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl ProviderArgs {
    /// The providers' configuration and the account's line limits.
    fn config(self) -> Result<(ProviderConfig, LineLimits), String> {
        let uses = |p| self.telephony == p || self.messaging == p;
        let mut config =
            ProviderConfig { telephony: self.telephony, messaging: self.messaging, ..Default::default() };
        let public_url = self.public_url.clone().unwrap_or_default();
        let required =
            |v: Option<String>, name: &str| v.filter(|v| !v.is_empty()).ok_or(format!("{name} is not set"));
        if uses(ProviderChoice::Twilio) {
            let api_key = match (self.twilio_api_key_sid, self.twilio_api_key_secret) {
                (Some(sid), Some(secret)) if !sid.is_empty() => Some((sid, secret)),
                (None, None) => None,
                _ => return Err("set both TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET, or neither".into()),
            };
            config.twilio = Some(providers::twilio::TwilioConfig {
                account_sid: required(self.twilio_account_sid, "TWILIO_ACCOUNT_SID")?,
                auth_token: required(self.twilio_auth_token, "TWILIO_AUTH_TOKEN")?,
                api_key,
                from_number: required(self.twilio_from_number, "TWILIO_FROM_NUMBER")?,
                api_base: self.twilio_api_base,
                public_url: public_url.clone(),
                machine_detection: self.machine_detection,
                request_timeout: PROVIDER_TIMEOUT,
            });
        }
        if uses(ProviderChoice::Voximplant) {
            let key_json = match (self.voximplant_key_json, &self.voximplant_credentials) {
                (Some(json), _) if !json.is_empty() => json,
                (_, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read VOXIMPLANT_CREDENTIALS {}: {e}", path.display()))?,
                _ => return Err("VOXIMPLANT_CREDENTIALS (the service-account key file) is not set".into()),
            };
            let key = serde_json::from_str(&key_json)
                .map_err(|e| format!("the Voximplant key file is not a service-account key: {e}"))?;
            config.voximplant = Some(providers::voximplant::VoximplantConfig {
                key,
                rule_id: required(self.voximplant_rule_id, "VOXIMPLANT_RULE_ID")?,
                caller_id: required(self.voximplant_caller_id, "VOXIMPLANT_CALLER_ID")?,
                sms_from: self.voximplant_sms_from,
                api_base: self.voximplant_api_base,
                public_url,
                request_timeout: PROVIDER_TIMEOUT,
            });
        }
        // Twilio takes one new call per second unless the account was raised.
        let default_cps = (self.telephony == ProviderChoice::Twilio).then_some(1.0);
        let lines = LineLimits {
            calls_per_second: self.calls_per_second.or(default_cps),
            max_concurrent: self.max_concurrent_calls,
        };
        Ok((config, lines))
    }
}

/// Token lifetimes and connection limits (docs/security.md). Durations in seconds.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Limits")]
struct LimitArgs {
    /// Courier app access tokens.
    #[arg(long, default_value_t = 3600)]
    courier_token_ttl: u64,
    /// Courier app refresh tokens (each works once).
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    courier_refresh_ttl: u64,
    /// Supervisor tokens; 0: until revoked.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    supervisor_token_ttl: u64,
    /// Integrator keys; 0: until revoked.
    #[arg(long, default_value_t = 365 * 24 * 3600)]
    integrator_key_ttl: u64,
    /// Open connections, websockets included.
    #[arg(long, default_value_t = 16_384)]
    max_connections: usize,
    /// Seconds for a request's head to arrive (also the keep-alive idle time).
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Seconds for a request's body to arrive and its answer to be ready.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// Websockets per token.
    #[arg(long, default_value_t = 4)]
    ws_per_token: usize,
    /// Websockets per courier (all their tokens).
    #[arg(long, default_value_t = 8)]
    ws_per_courier: usize,
    /// A reverse proxy (load balancer, nginx) whose X-Forwarded-For names
    /// the client, for per-address limits; repeat for each (docs/deploy.md).
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Failed authentications a minute per client address (burst: twice).
    #[arg(long, default_value_t = 10)]
    auth_failures_per_minute: u32,
    /// Reschedule-page requests a minute per client address (burst: the same).
    #[arg(long, default_value_t = 30)]
    reschedule_pages_per_minute: u32,
    /// Writes a minute per token, admins exempt (burst: half).
    #[arg(long, default_value_t = 1200)]
    writes_per_minute: u32,
    /// Campaign enrollments a minute per token, admins exempt (burst: the same).
    #[arg(long, default_value_t = 10)]
    campaign_runs_per_minute: u32,
}

impl LimitArgs {
    fn apply(&self, config: &mut ServerConfig) {
        let secs = std::time::Duration::from_secs;
        let opt = |s: u64| (s > 0).then(|| secs(s));
        config.tokens.courier_access = secs(self.courier_token_ttl);
        config.tokens.courier_refresh = secs(self.courier_refresh_ttl);
        config.tokens.supervisor = opt(self.supervisor_token_ttl);
        config.tokens.integrator = opt(self.integrator_key_ttl);
        config.connections.max_connections = self.max_connections;
        config.connections.header_read_timeout = secs(self.header_timeout);
        config.connections.request_timeout = secs(self.request_timeout);
        config.connections.ws_per_token = self.ws_per_token;
        config.connections.ws_per_courier = self.ws_per_courier;
        config.connections.trusted_proxies = self.trusted_proxies.clone().into();
        config.rates = RateLimits {
            auth_failures: Rate::new(
                self.auth_failures_per_minute,
                self.auth_failures_per_minute.saturating_mul(2),
            ),
            reschedule_page: Rate::new(self.reschedule_pages_per_minute, self.reschedule_pages_per_minute),
            writes: Rate::new(self.writes_per_minute, (self.writes_per_minute / 2).max(1)),
            campaign_runs: Rate::new(self.campaign_runs_per_minute, self.campaign_runs_per_minute),
        };
    }
}

#[derive(Debug, clap::Args)]
struct LeasesArgs {
    /// The server's database (read only; the nodes may be running).
    #[arg(long, default_value = "./callahead.db")]
    db: PathBuf,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute every event's hash from the database and name the first
    /// altered or missing seq. Exits 0 when the whole chain holds.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The server's database (read only; the server may be running).
    #[arg(long, default_value = "./callahead.db")]
    db: PathBuf,
    /// A digest kept earlier, SEQ:HASH (as `GET /v1/audit/digest` gave it):
    /// the chain must pass through it. Repeatable.
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_digest)]
    expect: Vec<(u64, [u8; 32])>,
}

fn parse_node_id(text: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if text.is_empty() || text.len() > 64 || !text.chars().all(ok) {
        return Err("a node id is 1 to 64 letters, digits, '.', '_' or '-'".into());
    }
    Ok(text.to_owned())
}

fn parse_digest(text: &str) -> Result<(u64, [u8; 32]), String> {
    let (seq, hash) = text.split_once(':').ok_or("expected SEQ:HASH")?;
    let seq = seq.parse::<u64>().map_err(|_| format!("{seq:?} is not a seq"))?;
    let hash = callahead_server::audit::parse_hex(hash).ok_or("the hash must be 64 hex digits")?;
    Ok((seq, hash))
}

#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// The server's database.
    #[arg(long, default_value = "./callahead.db")]
    db: PathBuf,
    /// Where to write the copy (must not exist).
    #[arg(long)]
    to: PathBuf,
}

/// The simulated customers (defaults: the simulator's realistic mix). Tests
/// of the bindings use these to make every customer pick up quickly.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Simulated customers")]
struct SimArgs {
    /// Seed of the simulated customers' choices.
    #[arg(long)]
    sim_seed: Option<u64>,
    /// Probability that a customer picks up, in [0, 1].
    #[arg(long)]
    sim_answer_rate: Option<f64>,
    /// Probability that the provider fails to carry a call, in [0, 1].
    #[arg(long)]
    sim_fail_rate: Option<f64>,
    /// Domain seconds of ringing before a pick-up: MIN MAX.
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"])]
    sim_ring_secs: Option<Vec<u32>>,
    /// Domain seconds between pick-up and key press or hang-up: MIN MAX.
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"])]
    sim_talk_secs: Option<Vec<u32>>,
    /// A customer's phone (E.164) that never picks up; repeat for several.
    #[arg(long, value_name = "PHONE")]
    sim_no_answer: Vec<String>,
    /// A customer's phone that answers at once and presses KEY after the
    /// message (`-` for none); repeat for several.
    #[arg(long, value_name = "PHONE=KEY")]
    sim_answer: Vec<String>,
    /// Append the simulated provider's call detail records (JSON lines) here.
    #[arg(long, value_name = "FILE")]
    sim_cdr: Option<PathBuf>,
}

impl SimArgs {
    /// Overrides the simulator's defaults with what was given; the server
    /// validates the result when it starts.
    fn apply(self, sim: &mut SimConfig) -> Result<(), String> {
        let pair = |v: Vec<u32>, default: (u32, u32)| match v[..] {
            [min, max] => (min, max),
            _ => default,
        };
        if let Some(seed) = self.sim_seed {
            sim.seed = seed;
        }
        if let Some(rate) = self.sim_answer_rate {
            sim.answer_rate = rate;
        }
        if let Some(rate) = self.sim_fail_rate {
            sim.fail_rate = rate;
        }
        if let Some(v) = self.sim_ring_secs {
            sim.ring_secs = pair(v, sim.ring_secs);
        }
        if let Some(v) = self.sim_talk_secs {
            sim.talk_secs = pair(v, sim.talk_secs);
        }
        if self.sim_cdr.is_some() {
            sim.cdr = self.sim_cdr;
        }
        for phone in self.sim_no_answer {
            sim.overrides.insert(phone, Behaviour::NoAnswer);
        }
        for spec in self.sim_answer {
            let bad = || format!("--sim-answer wants PHONE=KEY (a keypad key, or - for none), got {spec:?}");
            let (phone, key) = spec.split_once('=').ok_or_else(bad)?;
            let key = match key {
                "-" => None,
                k => Some(k.to_owned().try_into().map_err(|_| bad())?),
            };
            sim.overrides.insert(phone.to_owned(), Behaviour::Answer { key });
        }
        Ok(())
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs on stderr; stdout carries what the command prints (the address).
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().with_current_span(true).init(),
        // Colour codes make a log file unreadable: only on a terminal.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Backup(args) => backup(args).await,
        Command::Audit(AuditCommand::Verify(args)) => verify(args).await,
        Command::Leases(args) => leases(args).await,
        Command::Openapi => match serde_json::to_string_pretty(&callahead_server::openapi::document()) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("callahead-server openapi: {e}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "demo")]
        Command::Demo(args) => match callahead_server::demo::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("callahead-server demo: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Every websocket is a file descriptor, and a shell's soft limit is often
/// 1,024: past it the accept loop can only wait for sockets to close. The
/// hard limit is the operator's word; the soft one is raised towards it, as
/// far as `--max-connections` needs.
fn raise_open_files(max_connections: usize) {
    // Beyond the sockets: the database, its WAL, the readers, the log.
    let needed = max_connections as u64 + 256;
    match rlimit::increase_nofile_limit(needed) {
        Ok(n) if n < needed => tracing::warn!(
            open_files = n,
            max_connections,
            "the open-file limit is below --max-connections: connections past it wait in the \
             listen queue; raise the hard limit (`ulimit -Hn`, systemd LimitNOFILE) or lower \
             --max-connections"
        ),
        Ok(n) => tracing::debug!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        eprintln!("callahead-server: --time-scale must be a positive number, got {}", args.time_scale);
        return ExitCode::FAILURE;
    }
    let mut config = ServerConfig::new(args.listen, args.db);
    config.admin_token = args.admin_token.filter(|t| !t.is_empty());
    config.metrics_token = args.metrics_token.filter(|t| !t.is_empty());
    config.outbound_allow = args.outbound_allow;
    config.node_id = args.node_id;
    let key = |v: Option<String>, name: &str| -> Result<Option<SecretKey>, String> {
        v.filter(|k| !k.is_empty())
            .map(|k| SecretKey::from_base64(&k).map_err(|e| format!("{name}: {e}")))
            .transpose()
    };
    match (
        key(args.secret_key, "CALLAHEAD_SECRET_KEY"),
        key(args.secret_key_previous, "CALLAHEAD_SECRET_KEY_PREVIOUS"),
    ) {
        (Ok(current), Ok(previous)) => config.secret_keys = Keys { current, previous },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("callahead-server: {e}");
            return ExitCode::FAILURE;
        }
    }
    args.limits.apply(&mut config);
    if let Err(e) = args.sim.apply(&mut config.simulator) {
        eprintln!("callahead-server: {e}");
        return ExitCode::FAILURE;
    }
    config.public_url = args.providers.public_url.clone();
    match args.providers.config() {
        Ok((providers, lines)) => {
            config.providers = providers;
            config.lines = lines;
        }
        Err(e) => {
            eprintln!("callahead-server: {e}");
            return ExitCode::FAILURE;
        }
    }
    if args.time_scale != 1.0 || args.clock_start.is_some() {
        config.scaled_time = Some(ScaledTime { speed: args.time_scale, start: args.clock_start });
    }
    raise_open_files(config.connections.max_connections);
    let server = match RunningServer::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("callahead-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("callahead-server listening on {}", server.base_url());
    wait_for_signal().await;
    tracing::info!("stopping");
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn backup(args: BackupArgs) -> ExitCode {
    let (db, to) = (args.db.clone(), args.to.clone());
    match tokio::task::spawn_blocking(move || callahead_server::store::backup::backup(&db, &to)).await {
        Ok(Ok(b)) => {
            println!(
                "backup of {} written to {}: {} bytes, schema version {}, event log head {}, integrity ok",
                callahead_server::store::Location::of(&args.db),
                args.to.display(),
                b.bytes,
                b.schema_version,
                b.head_seq
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("callahead-server backup: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("callahead-server backup: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn leases(args: LeasesArgs) -> ExitCode {
    use callahead_server::store::leases::{report, LEASE_TTL_MS};
    let (db, now) = (args.db.clone(), chrono::Utc::now().timestamp_millis());
    let where_ = callahead_server::store::Location::of(&args.db);
    match tokio::task::spawn_blocking(move || report(&db, now)).await {
        Ok(Ok((nodes, stuck))) => {
            println!("nodes of {where_}:");
            for n in &nodes {
                let state = if n.heartbeat_at > now - LEASE_TTL_MS { "alive" } else { "silent" };
                println!("  {}  {state}, last heartbeat {} s ago", n.id, (now - n.heartbeat_at) / 1000);
            }
            if stuck.is_empty() {
                println!("no stuck lease");
                return ExitCode::SUCCESS;
            }
            println!("stuck leases (held, expired, not taken over):");
            for l in &stuck {
                println!(
                    "  {} {}  owner {} epoch {}, expired {} s ago",
                    l.kind,
                    l.item,
                    l.owner,
                    l.epoch,
                    (now - l.expires_at) / 1000
                );
            }
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("callahead-server leases: {where_}: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("callahead-server leases: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn verify(args: VerifyArgs) -> ExitCode {
    let db = args.db.clone();
    let verifier = args
        .expect
        .iter()
        .fold(callahead_server::audit::Verifier::default(), |v, (seq, hash)| v.expect(*seq, *hash));
    let result =
        tokio::task::spawn_blocking(move || callahead_server::store::audit::verify(&db, verifier)).await;
    match result {
        Ok(Ok(v)) => {
            println!(
                "audit chain of {} holds: {} events, head seq {}, hash {}",
                callahead_server::store::Location::of(&args.db),
                v.events,
                v.head_seq,
                callahead_server::audit::hex(&v.head_hash)
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!(
                "callahead-server audit verify: {}: {e}",
                callahead_server::store::Location::of(&args.db)
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("callahead-server audit verify: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_id_is_a_short_plain_name() {
        assert_eq!(parse_node_id("node-a.1_x"), Ok("node-a.1_x".to_owned()));
        for bad in ["", "node a", "nöde", "a/b", &"n".repeat(65)] {
            let e = parse_node_id(bad).expect_err(bad);
            assert!(e.contains("1 to 64"), "{bad}: {e}");
        }
    }

    #[test]
    fn twilio_from_the_environment_with_its_default_rate_and_no_secret_in_debug() {
        let cli = Cli::try_parse_from([
            "callahead-server",
            "serve",
            "--telephony",
            "twilio",
            "--messaging",
            "twilio",
            "--public-url",
            "https://callahead.example",
            "--twilio-account-sid",
            "AC0123",
            "--twilio-auth-token",
            "token-secret-1",
            "--twilio-from-number",
            "+15005550006",
        ])
        .expect("parses");
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let (providers, lines) = args.providers.config().expect("config");
        assert_eq!(lines, LineLimits { calls_per_second: Some(1.0), max_concurrent: None });
        let twilio = providers.twilio.clone().expect("twilio");
        assert_eq!(
            (twilio.account_sid.as_str(), twilio.api_base.as_str()),
            ("AC0123", "https://api.twilio.com")
        );
        let printed = format!("{providers:?}");
        assert!(!printed.contains("token-secret-1"), "{printed}");
    }

    #[test]
    fn a_missing_credential_is_named() {
        let cli =
            Cli::try_parse_from(["callahead-server", "serve", "--telephony", "voximplant"]).expect("parses");
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let e = args.providers.config().expect_err("no key");
        assert!(e.contains("VOXIMPLANT_CREDENTIALS"), "{e}");
        assert!(Cli::try_parse_from(["callahead-server", "serve", "--telephony", "plivo"]).is_err());
    }
}
