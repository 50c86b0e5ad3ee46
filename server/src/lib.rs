//! Callahead server library: everything `callahead-server` runs, exposed so
//! the end-to-end tests, the demo and the load generator start the very same
//! server in-process.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
mod best_hour;
pub mod campaigns;
pub mod cascade;
pub mod config;
pub mod connections;
mod dashboard;
#[cfg(feature = "demo")]
pub mod demo;
mod due_loop;
pub mod error;
pub mod guard;
pub mod hub;
pub mod metered;
pub mod metrics;
pub mod openapi;
pub mod orchestrator;
pub mod outbound;
pub mod placing;
pub mod positions;
pub mod presence;
pub mod providers;
pub mod replan;
pub mod report;
pub mod reschedule;
pub mod retention;
pub mod secrets;
pub mod sockets;
pub mod store;
pub mod tasks;
pub mod tokens;
pub mod webhooks;
pub mod ws;
mod zone_calling_codes;

pub use app::RunningServer;
pub use config::ServerConfig;
pub use error::{AppError, ServerError};
