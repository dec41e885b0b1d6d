//! A throwaway PostgreSQL cluster for tests and benchmarks (feature
//! `test-harness`).
//!
//! [`TestCluster::start`] runs Debian's `initdb` and `pg_ctl` (from
//! `/usr/lib/postgresql/*/bin/`, the newest version found, or from
//! `FOUNDATION_POSTGRES_BIN`) into a temporary directory, listening on a
//! free loopback port and on a unix socket in that directory. Running as
//! root, it runs them as the `postgres` user (`runuser -u postgres --`),
//! with the directory handed to that user. Every wait is bounded
//! (`pg_ctl -w -t`).
//!
//! The cluster is removed by a watchdog process (`sh`) that holds the read
//! end of a pipe whose write end only this process holds: when the
//! [`TestCluster`] is dropped, or when the process ends in any way (a
//! failed test, a panic, SIGKILL), the pipe closes, and the watchdog stops
//! the server (`pg_ctl stop -m immediate`) and deletes the directory. So a
//! cluster shared by a whole test binary through [`TestCluster::shared`]
//! (a static, never dropped) is cleaned up too.
//!
//! [`TestCluster::start_tls`] (and [`TestCluster::shared_tls`]) start one
//! with `ssl = on`: before `initdb` it generates, with the `openssl`
//! command-line tool (installed wherever Debian's postgresql package is,
//! through its `ssl-cert` dependency, so no crate is added for it), a
//! throwaway CA and a server certificate for `localhost` and `127.0.0.1`
//! signed by it (P-256 keys, valid two days). [`TestCluster::ca_file`] is
//! the CA's PEM file, for `sslrootcert`; [`TestCluster::tcp_url`] connects
//! over TCP, where TLS is offered (never over the unix socket).
//!
//! When PostgreSQL is not installed, [`TestCluster::shared`] and
//! [`TestCluster::start`] answer `None` after printing to stderr that the
//! PostgreSQL tests were skipped and why, unless the environment variable
//! `FOUNDATION_REQUIRE_POSTGRES=1` is set (as `.ci/run` does): then a
//! missing PostgreSQL is an error.
//!
//! This module is not for production: the cluster trusts every local
//! connection and its data is deleted with it.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};

/// The environment variable that turns "PostgreSQL not found" into a
/// failure.
pub const REQUIRE_POSTGRES_VAR: &str = "FOUNDATION_REQUIRE_POSTGRES";

/// The environment variable naming the directory of `initdb` and `pg_ctl`
/// (optional; Debian's versioned directories are searched otherwise).
pub const POSTGRES_BIN_VAR: &str = "FOUNDATION_POSTGRES_BIN";

/// How long `pg_ctl` may wait for a start, stop or restart.
const PG_CTL_WAIT_SECONDS: u32 = 60;

/// How often, and how many times, dropping a cluster checks whether its
/// watchdog finished (at least 90 s in all).
const CLEANUP_POLL_INTERVAL: Duration = Duration::from_millis(20);
const CLEANUP_POLLS: u32 = 4500;

/// A running throwaway PostgreSQL cluster. Dropping it stops the server
/// and removes its directory.
#[derive(Debug)]
pub struct TestCluster {
    directory: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    next_database: AtomicU64,
    /// The CA certificate's PEM file, for a cluster with `ssl = on`.
    ca_file: Option<PathBuf>,
}

impl TestCluster {
    /// The cluster shared by every test of this process, started on first
    /// use; `None` (with a loud message on stderr) when PostgreSQL is not
    /// installed and not required.
    ///
    /// # Errors
    ///
    /// `dependency_failed` when PostgreSQL is required but missing, or
    /// when the cluster does not start (the error names the step and
    /// carries the server log's tail).
    pub fn shared() -> Result<Option<&'static TestCluster>, Error> {
        static SHARED: OnceLock<Result<Option<TestCluster>, Error>> = OnceLock::new();
        match SHARED.get_or_init(TestCluster::start) {
            Ok(Some(cluster)) => Ok(Some(cluster)),
            Ok(None) => {
                skipped_loudly("PostgreSQL is not installed");
                Ok(None)
            }
            Err(error) => Err(error.clone()),
        }
    }

    /// The cluster with `ssl = on` shared by every test of this process
    /// (see [`start_tls`](TestCluster::start_tls)), started on first use;
    /// `None` as for [`shared`](TestCluster::shared).
    ///
    /// # Errors
    ///
    /// As for [`start_tls`](TestCluster::start_tls).
    pub fn shared_tls() -> Result<Option<&'static TestCluster>, Error> {
        static SHARED: OnceLock<Result<Option<TestCluster>, Error>> = OnceLock::new();
        match SHARED.get_or_init(TestCluster::start_tls) {
            Ok(Some(cluster)) => Ok(Some(cluster)),
            Ok(None) => {
                skipped_loudly("PostgreSQL is not installed");
                Ok(None)
            }
            Err(error) => Err(error.clone()),
        }
    }

    /// Starts a cluster of its own; `None` (with a loud message on
    /// stderr) when PostgreSQL is not installed and not required.
    ///
    /// # Errors
    ///
    /// As for [`shared`](TestCluster::shared).
    pub fn start() -> Result<Option<TestCluster>, Error> {
        TestCluster::start_with(false)
    }

    /// Starts a cluster of its own that offers TLS (`ssl = on`) with a
    /// server certificate for `localhost` and `127.0.0.1` signed by a CA
    /// generated for it ([`ca_file`](TestCluster::ca_file)); `None` as for
    /// [`start`](TestCluster::start).
    ///
    /// # Errors
    ///
    /// As for [`shared`](TestCluster::shared); also `dependency_failed`
    /// when the `openssl` tool is missing or fails (the error names the
    /// step).
    pub fn start_tls() -> Result<Option<TestCluster>, Error> {
        TestCluster::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Option<TestCluster>, Error> {
        let Some(bin) = find_bin_directory() else {
            if std::env::var(REQUIRE_POSTGRES_VAR).as_deref() == Ok("1") {
                return Err(Error::new(
                    ErrorCode::DEPENDENCY_FAILED,
                    format!(
                        "{REQUIRE_POSTGRES_VAR}=1 but no PostgreSQL server binaries were found \
                         (initdb and pg_ctl under /usr/lib/postgresql/*/bin/ or in \
                         {POSTGRES_BIN_VAR}); install Debian's postgresql package"
                    ),
                ));
            }
            skipped_loudly("PostgreSQL is not installed");
            return Ok(None);
        };
        let directory = tempfile::Builder::new()
            .prefix("foundation-pg-")
            .tempdir()
            .map_err(|error| step_failed("create the cluster directory", error))?
            .keep();
        let as_postgres_user = is_root();
        let mut cluster = TestCluster {
            directory,
            bin,
            port: 0,
            as_postgres_user,
            watchdog: Mutex::new(None),
            next_database: AtomicU64::new(0),
            ca_file: None,
        };
        // From here on, dropping `cluster` removes the directory.
        cluster.start_watchdog()?;
        let tls_config = if tls {
            let certificates = cluster.directory.join("tls");
            let config = generate_certificates(&certificates)?;
            cluster.ca_file = Some(certificates.join("ca.pem"));
            config
        } else {
            String::new()
        };
        if as_postgres_user {
            run(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:")
                    .arg(&cluster.directory),
                "hand the cluster directory to the postgres user",
            )?;
        }
        let data = cluster.data_directory();
        run(
            cluster
                .server_command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
                .args(["--locale", "C"]),
            "initdb",
        )?;
        cluster.port = free_port()?;
        let config = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = 300\nfsync = on\nsynchronous_commit = on\n{tls_config}",
            cluster.port,
            cluster.directory.display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut file| file.write_all(config.as_bytes()))
            .map_err(|error| step_failed("configure the cluster", error))?;
        cluster.pg_ctl("start")?;
        Ok(Some(cluster))
    }

    /// The cluster's port on 127.0.0.1 (also the number of its unix
    /// socket).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection string for `database` over the cluster's unix socket,
    /// as the `postgres` superuser (trusted, no password).
    pub fn url(&self, database: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={database}",
            self.directory.display(),
            self.port
        )
    }

    /// A connection string for `database` over TCP on 127.0.0.1 (where a
    /// cluster started with [`start_tls`](TestCluster::start_tls) offers
    /// TLS), as the `postgres` superuser (trusted, no password); `params`
    /// (`key=value` pairs, such as `sslmode=require`) are appended.
    pub fn tcp_url(&self, database: &str, params: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={database} {params}",
            self.port
        )
    }

    /// The PEM file of the CA that signed the server's certificate, for
    /// `sslrootcert`; `None` for a cluster without TLS.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Creates a fresh, empty database and returns its connection string.
    ///
    /// # Errors
    ///
    /// A classified connection or server error when the database cannot
    /// be created.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the database created and unused.
    pub async fn create_database(&self) -> Result<String, Error> {
        let number = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{}_{number}", std::process::id());
        crate::schema::execute_once(
            &self.url("postgres"),
            &format!("CREATE DATABASE {name}"),
            Duration::from_secs(60),
        )
        .await?;
        Ok(self.url(&name))
    }

    /// Restarts the server (`pg_ctl restart -m fast`): every connection is
    /// cut, and the server comes back on the same port and socket.
    ///
    /// # Errors
    ///
    /// `dependency_failed` when `pg_ctl` fails or times out.
    pub fn restart(&self) -> Result<(), Error> {
        self.pg_ctl("restart")
    }

    /// Stops the server (`pg_ctl stop -m fast`): every connection is cut
    /// and none is accepted until [`start_again`](Self::start_again).
    ///
    /// # Errors
    ///
    /// `dependency_failed` when `pg_ctl` fails or times out.
    pub fn stop(&self) -> Result<(), Error> {
        self.pg_ctl("stop")
    }

    /// Starts the server again after [`stop`](Self::stop), on the same
    /// port and socket.
    ///
    /// # Errors
    ///
    /// `dependency_failed` when `pg_ctl` fails or times out.
    pub fn start_again(&self) -> Result<(), Error> {
        self.pg_ctl("start")
    }

    /// The server's log so far (empty when it cannot be read).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.directory.join("server.log")).unwrap_or_default()
    }

    /// The cluster's data directory.
    fn data_directory(&self) -> PathBuf {
        self.directory.join("data")
    }

    fn pg_ctl(&self, action: &str) -> Result<(), Error> {
        let wait = PG_CTL_WAIT_SECONDS.to_string();
        let data = self.data_directory();
        let log = self.directory.join("server.log");
        let result = run(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", &wait, "-m", "fast", action]),
            "pg_ctl",
        );
        result.map_err(|error| {
            let tail = std::fs::read_to_string(&log)
                .map(|text| {
                    let lines: Vec<_> = text.lines().rev().take(20).collect();
                    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
                })
                .unwrap_or_default();
            error
                .with_context("action", action)
                .with_context("server_log", tail)
        })
    }

    /// A command running one of the server binaries, as the `postgres`
    /// user when this process is root.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// Starts the process that stops the server and deletes the directory
    /// once this process closes its end of the pipe.
    fn start_watchdog(&self) -> Result<(), Error> {
        let pg_ctl = self.server_command("pg_ctl");
        let mut stop = vec![pg_ctl.get_program().to_string_lossy().into_owned()];
        stop.extend(
            pg_ctl
                .get_args()
                .map(|arg| arg.to_string_lossy().into_owned()),
        );
        let script = format!(
            "cat >/dev/null; if [ -f '{data}/postmaster.pid' ]; then {stop} -D '{data}' -w -t {wait} -m immediate stop >/dev/null 2>&1; fi; rm -rf '{dir}'",
            data = self.data_directory().display(),
            stop = stop.join(" "),
            wait = PG_CTL_WAIT_SECONDS,
            dir = self.directory.display(),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| step_failed("start the cleanup watchdog", error))?;
        let Some(stdin) = child.stdin.take() else {
            return Err(Error::new(
                ErrorCode::INTERNAL_ERROR,
                "the cleanup watchdog has no stdin pipe",
            ));
        };
        *self.watchdog.lock().unwrap_or_else(PoisonError::into_inner) = Some((child, stdin));
        Ok(())
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((mut child, stdin)) = watchdog else {
            return;
        };
        drop(stdin);
        // Bounded: pg_ctl's own wait is bounded, rm is quick, and this
        // polls at most CLEANUP_POLLS times.
        for _ in 0..CLEANUP_POLLS {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::park_timeout(CLEANUP_POLL_INTERVAL),
            }
        }
        let _ = writeln!(
            std::io::stderr(),
            "foundation-persist-postgres: the test cluster in {} was not removed in time",
            self.directory.display()
        );
    }
}

/// Prints that the PostgreSQL tests were skipped, and why: once per
/// process, straight to the stderr handle, so that the test runner's output
/// capture does not swallow it.
fn skipped_loudly(reason: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n**********\n** SKIPPED: the foundation-persist-postgres tests did not run: {reason}.\n\
             ** Install Debian's postgresql package, or set {REQUIRE_POSTGRES_VAR}=1 to make this a failure.\n**********\n"
        );
    });
}

/// Generates, into `directory` (created), a CA (`ca.pem`) and a server
/// key and certificate (`server.key`, `server.pem`) for `localhost` and
/// `127.0.0.1` signed by it; returns the `postgresql.conf` lines that use
/// them.
fn generate_certificates(directory: &Path) -> Result<String, Error> {
    std::fs::create_dir_all(directory)
        .map_err(|error| step_failed("create the certificate directory", error))?;
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(
        Command::new("openssl")
            .current_dir(directory)
            .args(["req", "-x509"])
            .args(p256)
            .args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"])
            .args(["-subj", "/CN=Foundation test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        "openssl: generate the test CA",
    )?;
    run(
        Command::new("openssl")
            .current_dir(directory)
            .args(["req", "-new"])
            .args(p256)
            .args(["-keyout", "server.key", "-out", "server.csr"])
            .args(["-subj", "/CN=localhost"]),
        "openssl: generate the server key",
    )?;
    std::fs::write(
        directory.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|error| step_failed("write the certificate extensions", error))?;
    run(
        Command::new("openssl")
            .current_dir(directory)
            .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem"])
            .args(["-CAkey", "ca.key", "-set_serial", "2", "-days", "2"])
            .args(["-out", "server.pem", "-extfile", "server.ext"]),
        "openssl: sign the server certificate",
    )?;
    // The server refuses a key that others may read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            directory.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|error| step_failed("restrict the server key", error))?;
    }
    Ok(format!(
        "ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n",
        cert = directory.join("server.pem").display(),
        key = directory.join("server.key").display(),
    ))
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin_directory() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(POSTGRES_BIN_VAR) {
        let dir = PathBuf::from(dir);
        return has_server_binaries(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|error| step_failed("find a free port", error))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| step_failed("find a free port", error))
}

/// Runs `command` to completion; a failure names `step` and carries the
/// command's output.
fn run(command: &mut Command, step: &str) -> Result<(), Error> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| step_failed(step, error))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::DEPENDENCY_FAILED,
        format!(
            "the test cluster's step '{step}' failed ({})",
            output.status
        ),
    )
    .with_context("stdout", String::from_utf8_lossy(&output.stdout))
    .with_context("stderr", String::from_utf8_lossy(&output.stderr)))
}

fn step_failed(step: &str, error: std::io::Error) -> Error {
    Error::new(
        ErrorCode::DEPENDENCY_FAILED,
        format!("the test cluster's step '{step}' failed"),
    )
    .with_cause(error)
}
