//! The `taskwire` binary: parse settings, start telemetry, serve until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use taskwire::app::{Application, shutdown_signal};
use taskwire::auth::{Authenticator, MintRequest};
use taskwire::config::{Cli, Command, TokenArgs};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.settings).await,
        Command::Token(args) => token(&cli.settings, args),
    }
}

/// `taskwire token`: prints a token signed with JWT_SECRET, for curl and for tests.
fn token(settings: &taskwire::Settings, args: TokenArgs) -> ExitCode {
    let auth = Authenticator::from_settings(settings);
    let request = MintRequest {
        sub: args.sub,
        workspace: args.workspace,
        name: args.name,
        email: args.email,
        ttl_seconds: args.ttl,
    };
    match auth.mint(&request) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("taskwire token: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: taskwire::Settings) -> ExitCode {
    taskwire::telemetry::init_tracing(&settings);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(err) => {
            let cause = cause_text(&err);
            tracing::error!(error = %format!("{err}{cause}"), "taskwire could not start");
            eprintln!("taskwire could not start: {err}{cause}");
            return ExitCode::FAILURE;
        }
    };
    let stop = shutdown_signal();
    let addr = app.local_addr();
    tracing::info!(%addr, "listening");
    // One machine-readable line on stdout so scripts and tests can find the port.
    println!("taskwire listening on http://{addr}");
    let _ = std::io::stdout().flush();
    match app.run_until_stopped(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}

fn cause_text(err: &taskwire::Error) -> String {
    std::error::Error::source(err)
        .map(|c| format!(" ({c})"))
        .unwrap_or_default()
}
