//! `callahead-server`: `serve` runs the server, `demo` plays a morning of
//! calls against it.

use callahead_core::clock::ScaledClock;
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use callahead_server::{RunningServer, ServerConfig};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "callahead-server", version, about = "Robot call-ahead for delivery couriers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP + websocket server with the embedded telephony simulator.
    Serve(ServeArgs),
    /// Play a demo morning of calls against an in-process server.
    #[cfg(feature = "demo")]
    Demo(callahead_server::demo::DemoArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// SQLite database file (created if missing).
    #[arg(long, default_value = "./callahead.db")]
    db: PathBuf,
    /// Domain seconds per real second: above 1 the simulated customers ring,
    /// talk and get retried faster (load tests, demos). 1 in production.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Bootstraps an admin with this token (only its hash is stored).
    #[arg(long, env = "CALLAHEAD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    #[command(flatten)]
    sim: SimArgs,
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
}

impl SimArgs {
    /// Overrides the simulator's defaults with what was given; the server
    /// validates the result when it starts.
    fn apply(self, sim: &mut SimConfig) {
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
        for phone in self.sim_no_answer {
            sim.overrides.insert(phone, Behaviour::NoAnswer);
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => serve(args).await,
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

async fn serve(args: ServeArgs) -> ExitCode {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        eprintln!("callahead-server: --time-scale must be a positive number, got {}", args.time_scale);
        return ExitCode::FAILURE;
    }
    let mut config = ServerConfig::new(args.listen, args.db);
    config.admin_token = args.admin_token.filter(|t| !t.is_empty());
    args.sim.apply(&mut config.simulator);
    if args.time_scale != 1.0 {
        config.clock = Arc::new(ScaledClock::new(chrono::Utc::now(), args.time_scale));
    }
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
