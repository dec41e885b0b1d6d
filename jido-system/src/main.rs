//! The `jido-system` binary: `serve`, the client commands, offline
//! `backup`/`restore`, and `demo`. See `jido-system --help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use foundation_error::{Error, ErrorCode};
use jido_system::Application;
use jido_system::cli::{Cli, CliError, Command, LogFormat, ServeArgs};
use jido_system::token::{TokenSource, server_token, server_token_file};

/// How long the ordered shutdown may take.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return report(&CliError::from(Error::from(error))),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Demo => jido_system::demo::run().await,
            command => jido_system::cli::run_client(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

fn report(error: &CliError) -> ExitCode {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{error}");
    }
    ExitCode::from(error.exit_code)
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Fails only when a subscriber is already installed (then it logs).
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        _ => builder.try_init(),
    };
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    init_logs(args.log_format);
    // Installed before anything is announced, so a SIGTERM right after
    // "listening" stops the server in order instead of killing it.
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let (token, source) = match &args.token_file {
        Some(path) => server_token_file(path)?,
        None => server_token(&args.data_dir)?,
    };
    let mut builder = Application::builder();
    match args.store.as_deref() {
        Some(store) if jido_system::cli::is_postgres_url(store) => {
            builder.postgres(store);
        }
        Some(store) => {
            return Err(CliError::from(
                Error::new(
                    ErrorCode::INVALID_CONFIG_VALUE,
                    "--store takes a postgres://user@host:port/db URL; leave it out for the redb file in --data-dir",
                )
                .with_context("store", store.split('@').next_back().unwrap_or_default()),
            ));
        }
        None => {
            builder.data_dir(&args.data_dir);
        }
    }
    if let Some(node_id) = &args.node_id {
        builder.node_id(node_id);
    }
    if let Some(ttl) = args.lease_ttl {
        builder.workflow_lease_ttl(ttl);
    }
    builder
        .listen(args.listen)
        .allow_remote(args.allow_remote)
        .inject_v2_start_faults(args.inject_v2_faults)
        .token(token);
    if let Some(path) = &args.plan {
        let text = std::fs::read_to_string(path)
            .map_err(|error| Error::from(error).with_context("plan", path.display()))?;
        builder.plan(deploy_monitor::RolloutPlan::from_toml(&text)?);
    }
    let application = builder.start().await.map_err(|error| {
        let code = if error.code() == ErrorCode::STORE_IN_USE {
            8
        } else {
            1
        };
        CliError {
            hint: (code == 8)
                .then(|| "another `jido-system serve` holds this data directory".to_owned()),
            error,
            exit_code: code,
        }
    })?;
    let address = application.listening(Duration::from_secs(30)).await?;
    let token_note = match source {
        TokenSource::Environment => "the API token is JIDO_TOKEN".to_owned(),
        TokenSource::File(path) => format!("the API token is in {}", path.display()),
        TokenSource::Created(path) => {
            format!("created the API token in {} (mode 0600)", path.display())
        }
        _ => String::new(),
    };
    #[allow(clippy::print_stdout)]
    {
        println!("jido-system listening on http://{address} ({token_note})");
    }
    tracing::info!(
        %address,
        node = application.shared().node.id(),
        store = application.shared().node.store_kind().as_str(),
        "ready"
    );
    wait_for_stop(terminate).await;
    tracing::info!(
        "stopping: HTTP first, then the workflows (in-flight steps are journaled), then the store"
    );
    application.shutdown(SHUTDOWN_BOUND).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_stop(terminate: std::io::Result<tokio::signal::unix::Signal>) {
    let terminate = async {
        match terminate {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
