//! `demo-server [--listen ADDR] [--patch PATH]`: serves the line protocol,
//! applies the patch on `SIGHUP` and reverts the newest patch on `SIGUSR2`,
//! and serves the hotfix control socket (`hotfix status PID` and friends).
//!
//! Stdout gets exactly one line, `listening on <ADDR> pid <PID>`; logs go to
//! stderr (`RUST_LOG` filters, default `info`).

use demo_server::cli::{CliError, Config, USAGE};
use demo_server::{server::Server, signals};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        tracing::warn!(%location, message = %hotfix_core::panic_message(info.payload()), "panic");
    }));
    let config = match Config::from_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(CliError::Help) => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(CliError::Invalid(why)) => {
            eprintln!("demo-server: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "demo-server stopped");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config) -> std::io::Result<()> {
    for key in &config.trusted_keys {
        let key = hotfix_core::signing::PublicKey::read(key)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        hotfix_core::Runtime::global().trust_key(key);
    }
    // Handlers first: a signal sent as soon as the address is known must not
    // meet the default action (which terminates).
    signals::spawn(config.patch.clone())?;
    // `hotfix status|check|apply|revert PID` reach the server through this.
    if let Err(e) = hotfix_core::control::serve() {
        tracing::warn!(error = %e, "no control socket: the hotfix command cannot reach this server");
    }
    let server = Server::bind(config.listen)?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, patch = %config.patch.display(), "listening");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {addr} pid {}", std::process::id())?;
    out.flush()?;
    drop(out);
    server.serve()
}
