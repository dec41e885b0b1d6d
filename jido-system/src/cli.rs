//! The command line: the clap definitions, the client commands that talk
//! to a running server, the offline store maintenance (`backup`,
//! `restore`), and the exit codes scripts can rely on.
//!
//! | exit code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | an internal error or an unexpected answer |
//! | 2 | bad command line (clap) |
//! | 3 | the server cannot be reached |
//! | 4 | authentication failed (no or wrong token) |
//! | 5 | not found (a flag, a workflow, an alert) |
//! | 6 | rejected (bad input, a conflict, a rule of the rollout: 400, 409, 413, 422) |
//! | 7 | unavailable or rate limited, try again (429, 503) |
//! | 8 | the data directory is in use by a running server (offline commands) |
//!
//! This module is not for serving (`main.rs` starts the application).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use foundation_error::{Error, ErrorCode, PortableError};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Foundation's application: serve it, drive it, maintain its store.
#[derive(Debug, Parser)]
#[command(name = "jido-system", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The log format of `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum LogFormat {
    /// Lines for people.
    Human,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Runs the application and its HTTP API.
    Serve(ServeArgs),
    /// The server's health and rollout phase.
    Status(ClientArgs),
    /// Flags: list, set.
    Flags {
        /// Where the server is.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do.
        #[command(subcommand)]
        command: FlagsCommand,
    },
    /// The rollout: status, advance, rollback, emergency-rollback.
    Rollout {
        /// Where the server is.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do.
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Workflows: start, status, cancel, list.
    Workflow {
        /// Where the server is.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do.
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// The active alerts.
    Alerts(ClientArgs),
    /// Copies the store of a stopped server to PATH.
    Backup {
        /// Where the backup goes (must not exist).
        path: PathBuf,
        /// The data directory.
        #[arg(long, default_value = "./jido-data")]
        data_dir: PathBuf,
        /// The server's `--store`: a PostgreSQL store is refused (back it
        /// up with pg_dump).
        #[arg(long, env = STORE_ENV)]
        store: Option<String>,
    },
    /// Replaces the store of a stopped server with the backup at PATH.
    Restore {
        /// The backup.
        path: PathBuf,
        /// The data directory.
        #[arg(long, default_value = "./jido-data")]
        data_dir: PathBuf,
        /// The server's `--store`: a PostgreSQL store is refused (restore
        /// it with pg_restore or psql).
        #[arg(long, env = STORE_ENV)]
        store: Option<String>,
    },
    /// The scripted walk-through of the plan on a temporary store.
    Demo,
}

/// The environment variable of `--store`.
pub const STORE_ENV: &str = "JIDO_STORE";

/// Whether a `--store` value names a PostgreSQL database
/// (`postgres://` or `postgresql://`).
pub fn is_postgres_url(store: &str) -> bool {
    let lower = store.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `serve`'s options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The data directory (the redb store, the token file).
    #[arg(long, default_value = "./jido-data")]
    pub data_dir: PathBuf,
    /// Where the state lives: a PostgreSQL database several nodes share
    /// (`postgres://user@host:port/db`); default: the redb file in
    /// --data-dir. TLS as in libpq: `?sslmode=verify-full&sslrootcert=
    /// /path/ca.pem` checks the server's certificate against that CA and
    /// its host name (`sslmode`: disable, prefer (default), require,
    /// verify-ca, verify-full).
    #[arg(long, env = STORE_ENV)]
    pub store: Option<String>,
    /// This node's id, the owner of its leases; each node sharing a store
    /// needs its own. Default: hostname-pid.
    #[arg(long, env = crate::app::cluster::NODE_ID_ENV)]
    pub node_id: Option<String>,
    /// A token file several nodes share (created with mode 0600 if
    /// missing); default: JIDO_TOKEN, else --data-dir/token.
    #[arg(long, env = "JIDO_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// How long a workflow's lease, and this node's membership lease,
    /// last unless renewed (`10s` by default, at least `300ms`): on a
    /// shared store a dead node's workflows resume on another node within
    /// about this plus a third, and `GET /api/v1/cluster` stops listing it
    /// as live within this.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub lease_ttl: Option<Duration>,
    /// The address of the HTTP API.
    #[arg(long, default_value = crate::app::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// A rollout plan (TOML); default: the plan's five phases.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Allows a non-loopback listen address.
    #[arg(long)]
    pub allow_remote: bool,
    /// The log format.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Fault injection (the demo): fail this percentage of the starts
    /// routed to CoordinatorV2.
    #[arg(long, default_value_t = 0, hide = true)]
    pub inject_v2_faults: u8,
}

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "JIDO_URL",
        default_value = "http://127.0.0.1:4000"
    )]
    pub url: String,
    /// The data directory holding the token (unless JIDO_TOKEN is set).
    #[arg(long, global = true, default_value = "./jido-data")]
    pub data_dir: PathBuf,
}

/// `flags` subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum FlagsCommand {
    /// Every flag and its value.
    List,
    /// Sets a flag: VALUE is on, off or a percentage 0-100.
    Set {
        /// The flag.
        name: String,
        /// on, off, or 0-100.
        value: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// `rollout` subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum RolloutCommand {
    /// The phase, its health and the history.
    Status,
    /// Advances one phase.
    Advance {
        /// Why.
        #[arg(long)]
        reason: String,
        /// Skip the health requirements (recorded as forced).
        #[arg(long)]
        force: bool,
    },
    /// Rolls back one phase.
    Rollback {
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Turns every rollout flag off at once.
    EmergencyRollback {
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// `workflow` subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum WorkflowCommand {
    /// Starts the workflow defined in FILE (JSON: a definition, or a
    /// request with `definition`, `metadata`, `idempotency_key`).
    Start {
        /// The definition file.
        file: PathBuf,
        /// The same key returns the same workflow.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// A workflow's status, steps and results.
    Status {
        /// The workflow.
        id: String,
    },
    /// Cancels a workflow.
    Cancel {
        /// The workflow.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// The durable workflows.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
    },
}

/// A failed command: what to print and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// The error (code, message).
    pub error: Error,
    /// What to try.
    pub hint: Option<String>,
    /// The process exit code.
    pub exit_code: u8,
}

impl CliError {
    fn new(error: Error, hint: Option<String>, exit_code: u8) -> CliError {
        CliError {
            error,
            hint,
            exit_code,
        }
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> CliError {
        let exit_code = match error.code() {
            code if code == ErrorCode::STORE_IN_USE => 8,
            code if code == ErrorCode::DATA_NOT_FOUND => 5,
            code if code == ErrorCode::PERMISSION_DENIED || code == ErrorCode::DATA_CORRUPTION => 4,
            _ => 1,
        };
        let hint = (error.code() == ErrorCode::STORE_IN_USE).then(|| {
            "stop the server first (backup and restore need the store to themselves)".to_owned()
        });
        CliError::new(error, hint, exit_code)
    }
}

impl From<CliError> for Error {
    /// The error, with the hint as context.
    fn from(error: CliError) -> Error {
        match error.hint {
            Some(hint) => error.error.with_context("hint", hint),
            None => error.error,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error: {}", self.error)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// An HTTP client of the API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    /// A client of the server at `args.url`, with the token from
    /// `JIDO_TOKEN` or the data directory (none if neither: reads still
    /// work on loopback).
    ///
    /// # Errors
    ///
    /// `internal_error` when the HTTP client cannot be built.
    pub fn new(args: &ClientArgs) -> Result<ApiClient, CliError> {
        // No token is fine for reads on loopback; writes then get 401 with a hint.
        let token = crate::token::client_token(&args.data_dir).ok();
        ApiClient::with_token(&args.url, token)
    }

    /// A client of `base` with `token`.
    ///
    /// # Errors
    ///
    /// `internal_error` when the HTTP client cannot be built.
    pub fn with_token(base: &str, token: Option<String>) -> Result<ApiClient, CliError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| {
                CliError::new(
                    Error::new(ErrorCode::INTERNAL_ERROR, format!("HTTP client: {error}")),
                    None,
                    1,
                )
            })?;
        Ok(ApiClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends a request; returns the JSON answer of a 2xx.
    ///
    /// # Errors
    ///
    /// A [`CliError`] with the server's error code, a hint and the exit
    /// code of the status.
    ///
    /// # Cancel safety
    ///
    /// A dropped request may have reached the server.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|error| {
            CliError::new(
                Error::new(
                    ErrorCode::NETWORK_ERROR,
                    format!("cannot reach {}: {error}", self.base),
                ),
                Some(
                    "is the server running? start it with `jido-system serve` (or pass --url)"
                        .into(),
                ),
                3,
            )
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        Err(answer_error(status, &value, retry_after))
    }
}

fn answer_error(status: StatusCode, body: &Value, retry_after: Option<String>) -> CliError {
    let error = match serde_json::from_value::<PortableError>(body.clone()) {
        Ok(portable) => portable.into_error(&crate::http::error::APPLICATION_CODES),
        // The legacy form (use_new_error_handling off) carries no code:
        // the HTTP status says what kind of failure it was.
        Err(_) => Error::new(
            legacy_code(status),
            body.get("error")
                .and_then(Value::as_str)
                .map_or_else(|| format!("HTTP {status}: {body}"), str::to_owned),
        )
        .with_context("http_status", status.as_u16()),
    };
    let (exit_code, hint) = match status.as_u16() {
        401 => (
            4,
            Some(
                "check the token: the data directory's `token` file (--data-dir) or JIDO_TOKEN"
                    .to_owned(),
            ),
        ),
        404 => (
            5,
            Some("list what exists with `flags list`, `workflow list` or `alerts`".to_owned()),
        ),
        400 | 409 | 413 | 422 => (6, None),
        429 => (
            7,
            Some(format!(
                "rate limited; retry after {} s",
                retry_after.unwrap_or_else(|| "1".into())
            )),
        ),
        503 => (
            7,
            Some("the component is restarting or unavailable; retry shortly".to_owned()),
        ),
        _ => (1, None),
    };
    CliError::new(error, hint, exit_code)
}

/// The code a legacy error body stands for, from its HTTP status (the
/// inverse of the server's one mapping, by category where it is not one to
/// one).
fn legacy_code(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::AUTHENTICATION_FAILED,
        403 => ErrorCode::PERMISSION_DENIED,
        404 => ErrorCode::DATA_NOT_FOUND,
        409 => ErrorCode::VERSION_CONFLICT,
        413 => crate::http::error::PAYLOAD_TOO_LARGE,
        422 => ErrorCode::BUSINESS_RULE_VIOLATION,
        429 => ErrorCode::RATE_LIMITED,
        503 => ErrorCode::SERVICE_UNAVAILABLE,
        400..=499 => ErrorCode::INVALID_INPUT,
        500..=599 => ErrorCode::INTERNAL_ERROR,
        _ => ErrorCode::UNKNOWN,
    }
}

fn print(value: &Value) {
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}

/// Runs a client command; prints its answer as JSON.
///
/// # Errors
///
/// The command's [`CliError`].
///
/// # Cancel safety
///
/// A dropped write may have reached the server; a dropped `backup` removes
/// its partial file; a dropped `restore` runs to its end in the store's
/// writer (see foundation-persist's `StoreFile::restore`).
pub async fn run_client(command: Command) -> Result<(), CliError> {
    match command {
        Command::Status(args) => {
            let client = ApiClient::new(&args)?;
            let health = match client.send(Method::GET, "/health", None).await {
                Ok(health) => health,
                Err(error) if error.exit_code == 7 => {
                    json!({"ready": false, "error": error.error.message()})
                }
                Err(error) => return Err(error),
            };
            let rollout = client.send(Method::GET, "/api/v1/rollout", None).await?;
            print(&json!({
                "health": health,
                "phase": rollout["phase"],
                "phase_name": rollout["phase_name"],
                "paused": rollout["paused"],
            }));
        }
        Command::Flags { client, command } => {
            let client = ApiClient::new(&client)?;
            let answer = match command {
                FlagsCommand::List => client.send(Method::GET, "/api/v1/flags", None).await?,
                FlagsCommand::Set {
                    name,
                    value,
                    reason,
                } => {
                    client
                        .send(
                            Method::PUT,
                            &format!("/api/v1/flags/{name}"),
                            Some(json!({"value": value, "reason": reason})),
                        )
                        .await?
                }
            };
            print(&answer);
        }
        Command::Rollout { client, command } => {
            let client = ApiClient::new(&client)?;
            let answer = match command {
                RolloutCommand::Status => client.send(Method::GET, "/api/v1/rollout", None).await?,
                RolloutCommand::Advance { reason, force } => {
                    client
                        .send(
                            Method::POST,
                            "/api/v1/rollout/advance",
                            Some(json!({"reason": reason, "force": force})),
                        )
                        .await?
                }
                RolloutCommand::Rollback { reason } => {
                    client
                        .send(
                            Method::POST,
                            "/api/v1/rollout/rollback",
                            Some(json!({"reason": reason})),
                        )
                        .await?
                }
                RolloutCommand::EmergencyRollback { reason } => {
                    client
                        .send(
                            Method::POST,
                            "/api/v1/rollout/emergency-rollback",
                            Some(json!({"reason": reason})),
                        )
                        .await?
                }
            };
            print(&answer);
        }
        Command::Workflow { client, command } => {
            let client = ApiClient::new(&client)?;
            let answer = match command {
                WorkflowCommand::Start {
                    file,
                    idempotency_key,
                } => {
                    let body = start_body(&file, idempotency_key)?;
                    client
                        .send(Method::POST, "/api/v1/workflows", Some(body))
                        .await?
                }
                WorkflowCommand::Status { id } => {
                    client
                        .send(Method::GET, &format!("/api/v1/workflows/{id}"), None)
                        .await?
                }
                WorkflowCommand::Cancel { id, reason } => {
                    client
                        .send(
                            Method::POST,
                            &format!("/api/v1/workflows/{id}/cancel"),
                            Some(json!({"reason": reason})),
                        )
                        .await?
                }
                WorkflowCommand::List { status } => {
                    let path = match status {
                        Some(status) => format!("/api/v1/workflows?status={status}"),
                        None => "/api/v1/workflows".to_owned(),
                    };
                    client.send(Method::GET, &path, None).await?
                }
            };
            print(&answer);
        }
        Command::Alerts(args) => {
            let client = ApiClient::new(&args)?;
            print(&client.send(Method::GET, "/api/v1/alerts", None).await?);
        }
        Command::Backup {
            path,
            data_dir,
            store,
        } => {
            refuse_postgres(store.as_deref(), "backup", "pg_dump")?;
            backup(&data_dir, &path).await?
        }
        Command::Restore {
            path,
            data_dir,
            store,
        } => {
            refuse_postgres(
                store.as_deref(),
                "restore",
                "pg_restore (or psql for a plain dump)",
            )?;
            restore(&data_dir, &path).await?
        }
        Command::Serve(_) | Command::Demo => {
            return Err(CliError::new(
                Error::new(ErrorCode::INVALID_INPUT, "not a client command"),
                None,
                1,
            ));
        }
    }
    Ok(())
}

/// The request body of `workflow start FILE`: the file is either a start
/// request (with `definition`) or a bare definition.
fn start_body(file: &Path, idempotency_key: Option<String>) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| Error::from(error).with_context("path", file.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|error| {
        Error::new(
            ErrorCode::FORMAT_ERROR,
            format!("{} is not JSON: {error}", file.display()),
        )
    })?;
    let mut body = if value.get("definition").is_some() {
        value
    } else {
        json!({"definition": value})
    };
    if let (Some(key), Some(map)) = (idempotency_key, body.as_object_mut()) {
        map.insert("idempotency_key".into(), json!(key));
    }
    Ok(body)
}

/// Offline backup and restore copy a redb file; a PostgreSQL store is
/// the database's to back up.
fn refuse_postgres(store: Option<&str>, command: &str, tool: &str) -> Result<(), CliError> {
    match store {
        Some(store) if is_postgres_url(store) => Err(CliError::new(
            Error::new(
                ErrorCode::OPERATION_NOT_PERMITTED,
                format!(
                    "`jido-system {command}` copies the redb store of a data directory; this store \
                     is PostgreSQL, whose own tools do that"
                ),
            )
            .with_context("store", "postgres"),
            Some(format!("use {tool} against the database")),
            6,
        )),
        _ => Ok(()),
    }
}

fn open_offline(data_dir: &Path) -> Result<foundation_persist::Store, CliError> {
    let path = data_dir.join(crate::app::STORE_FILE);
    if !path.exists() {
        return Err(CliError::new(
            Error::new(
                ErrorCode::DATA_NOT_FOUND,
                format!("no store at {}", path.display()),
            ),
            Some("pass the server's --data-dir".into()),
            5,
        ));
    }
    Ok(crate::app::open_store(
        data_dir,
        &foundation_persist::StoreOptions::new(),
    )?)
}

/// Progress of a long copy on stderr, once a second, until `work` ends.
async fn with_progress<T>(
    label: &str,
    watched: Option<&Path>,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let mut work = std::pin::pin!(work);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut seconds = 0u64;
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = ticker.tick() => {
                seconds += 1;
                let copied = watched
                    .and_then(|path| std::fs::metadata(path).ok())
                    .map(|metadata| format!(", {} bytes written", metadata.len()))
                    .unwrap_or_default();
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("{label}: {seconds} s{copied}");
                }
            }
        }
    }
}

async fn backup(data_dir: &Path, destination: &Path) -> Result<(), CliError> {
    let store = open_offline(data_dir)?;
    let file = store
        .file()
        .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "the store has no file"))?;
    let result = with_progress("backup", Some(destination), file.backup(destination)).await;
    let closed = store.close().await;
    let report = result?;
    closed?;
    print(&json!({
        "backup": report.path.display().to_string(),
        "entries": report.entries,
        "revision": report.revision,
    }));
    Ok(())
}

async fn restore(data_dir: &Path, source: &Path) -> Result<(), CliError> {
    let store = open_offline(data_dir)?;
    let file = store
        .file()
        .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "the store has no file"))?;
    let result = with_progress("restore", None, file.restore(source)).await;
    let closed = store.close().await;
    let entries = result?;
    closed?;
    print(&json!({"restored_from": source.display().to_string(), "entries": entries}));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy body (`use_new_error_handling` off) keeps its kind through
    /// the HTTP status instead of printing `[9999 unknown]`.
    #[test]
    fn legacy_error_bodies_take_their_code_from_the_status() {
        let refused = answer_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({"error": "advance refused: phase 0 has not passed its last check"}),
            None,
        );
        assert_eq!(refused.error.code(), ErrorCode::BUSINESS_RULE_VIOLATION);
        assert_eq!(refused.exit_code, 6);
        assert!(refused.error.to_string().contains("advance refused"));
        let missing = answer_error(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "no such flag"}),
            None,
        );
        assert_eq!(missing.error.code(), ErrorCode::DATA_NOT_FOUND);
        let busy = answer_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({}),
            None,
        );
        assert_eq!(busy.error.code(), ErrorCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.exit_code, 7);
    }
}
