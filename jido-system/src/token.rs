//! The API token: `JIDO_TOKEN` when set, otherwise the data directory's
//! `token` file, created on the server's first start with mode 0600.
//!
//! A token file that others may read (any group or other permission bit) is
//! refused, as is one that is empty, too short or not printable ASCII (a
//! corrupt file): the error names the file and how to fix it.
//!
//! This module is not for checking requests (`http/guard.rs`).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use foundation_error::{Error, ErrorCode, Result};

/// The environment variable that overrides the token file.
pub const TOKEN_ENV: &str = "JIDO_TOKEN";
/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "token";
/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest token accepted.
pub const MAX_TOKEN_LEN: usize = 256;

/// Where the token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// The `JIDO_TOKEN` environment variable.
    Environment,
    /// An existing token file.
    File(PathBuf),
    /// A token file created now.
    Created(PathBuf),
}

/// The token path of `data_dir`.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

fn check(token: &str, origin: &str) -> Result<()> {
    let printable = token.bytes().all(|byte| byte.is_ascii_graphic());
    if token.len() < MIN_TOKEN_LEN || token.len() > MAX_TOKEN_LEN || !printable {
        return Err(Error::new(
            ErrorCode::DATA_CORRUPTION,
            format!(
                "{origin} does not hold a valid token ({MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} printable ASCII characters); delete it to have the server create a new one, or set {TOKEN_ENV}"
            ),
        )
        .with_context("token_source", origin));
    }
    Ok(())
}

fn from_environment() -> Result<Option<String>> {
    match std::env::var(TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => {
            let token = token.trim().to_owned();
            check(&token, TOKEN_ENV)?;
            Ok(Some(token))
        }
        _ => Ok(None),
    }
}

/// Reads the token file at `path`.
///
/// # Errors
///
/// `data_not_found` when it does not exist; `permission_denied` when
/// others may read it; `data_corruption` when it is not a valid token; I/O
/// errors.
pub fn read_file(path: &Path) -> Result<String> {
    let metadata = std::fs::metadata(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            Error::new(
                ErrorCode::DATA_NOT_FOUND,
                format!(
                    "no token file at {} (start the server once, or set {TOKEN_ENV})",
                    path.display()
                ),
            )
        } else {
            Error::from(error).with_context("path", path.display())
        }
    })?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::new(
            ErrorCode::PERMISSION_DENIED,
            format!(
                "the token file {} may be read by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ),
        )
        .with_context("path", path.display()));
    }
    let bytes = std::fs::read(path)
        .map_err(|error| Error::from(error).with_context("path", path.display()))?;
    let origin = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::new(
            ErrorCode::DATA_CORRUPTION,
            format!("{origin} is not text; delete it to have the server create a new one"),
        )
    })?;
    let token = text.trim().to_owned();
    check(&token, &origin)?;
    Ok(token)
}

/// The token a server uses: `JIDO_TOKEN`, the data directory's file, or a
/// new file (mode 0600) holding a fresh random token.
///
/// # Errors
///
/// As for [`read_file`]; I/O errors creating the file.
pub fn server_token(data_dir: &Path) -> Result<(String, TokenSource)> {
    if let Some(token) = from_environment()? {
        return Ok((token, TokenSource::Environment));
    }
    let path = token_path(data_dir);
    if path.exists() {
        return Ok((read_file(&path)?, TokenSource::File(path)));
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|error| Error::from(error).with_context("data_dir", data_dir.display()))?;
    let token = create_token_file(&path)?;
    Ok((token, TokenSource::Created(path)))
}

/// The token of a server given `--token-file PATH` (a file several nodes
/// share): `JIDO_TOKEN` when set, else the file at `path`, created (mode
/// 0600, a fresh random token) when missing. Two nodes creating it at once
/// agree: the file is created exclusively and the loser reads the
/// winner's.
///
/// # Errors
///
/// As for [`read_file`]; I/O errors creating the file.
pub fn server_token_file(path: &Path) -> Result<(String, TokenSource)> {
    if let Some(token) = from_environment()? {
        return Ok((token, TokenSource::Environment));
    }
    if path.exists() {
        return Ok((read_file(path)?, TokenSource::File(path.to_owned())));
    }
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(directory)
            .map_err(|error| Error::from(error).with_context("path", directory.display()))?;
    }
    match create_token_file(path) {
        Ok(token) => Ok((token, TokenSource::Created(path.to_owned()))),
        Err(error) if error.code() == ErrorCode::ALREADY_EXISTS => {
            Ok((read_file(path)?, TokenSource::File(path.to_owned())))
        }
        Err(error) => Err(error),
    }
}

/// Creates the token file at `path` exclusively (mode 0600) with a fresh
/// random token.
fn create_token_file(path: &Path) -> Result<String> {
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| Error::from(error).with_context("path", path.display()))?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| Error::from(error).with_context("path", path.display()))?;
    Ok(token)
}

/// The token a client uses: `JIDO_TOKEN`, or the data directory's file.
///
/// # Errors
///
/// As for [`read_file`].
pub fn client_token(data_dir: &Path) -> Result<String> {
    match from_environment()? {
        Some(token) => Ok(token),
        None => read_file(&token_path(data_dir)),
    }
}
