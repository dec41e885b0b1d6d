//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` read from the
//! connection string, and the rustls connector (ring provider) that every
//! connection of a store uses: the pool's, the `LISTEN` connection's, and
//! so the schema migration's (it runs on a pooled connection).
//!
//! The modes, as libpq's:
//!
//! | `sslmode` | TLS | certificate check |
//! | --- | --- | --- |
//! | `disable` | never | none |
//! | `prefer` (default) | when the server offers it, plain otherwise | none; the chain when `sslrootcert` is given |
//! | `require` | always: a server without TLS is refused | none; the chain when `sslrootcert` is given |
//! | `verify-ca` | always | the chain, to `sslrootcert` or Mozilla's roots |
//! | `verify-full` | always | the chain and the host name |
//!
//! Only `verify-full` protects against a server that impersonates the
//! real one; `prefer` and `require` without a root file only keep the
//! traffic from being read on the way (as with libpq). `sslrootcert` is a
//! PEM file of CA certificates, read once when the store opens; without it
//! the verifying modes use Mozilla's roots (the `webpki-roots` crate,
//! compiled in: libpq's `sslrootcert=system`). A PostgreSQL server never
//! offers TLS over a unix socket, so there only `disable` and `prefer`
//! connect. Client certificates (`sslcert`, `sslkey`) are not supported.
//!
//! tokio-postgres knows `sslmode` only up to `require` and refuses
//! `sslrootcert`, so both are taken out of the string before it is parsed
//! ([`split`]), and the driver is told `require` for the verifying modes.
//!
//! This module is not for classifying TLS failures (`classify.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use foundation_error::{Error, ErrorCode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector every connection of a store uses.
pub(crate) type Tls = MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, Error> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            // libpq's `allow` (plain first, TLS when the server insists)
            // has no counterpart in the driver.
            other => Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!(
                    "sslmode={other} is not supported; use disable, prefer, require, verify-ca \
                     or verify-full"
                ),
            )
            .with_context("field", "sslmode")),
        }
    }

    /// What the driver is told: it negotiates, we verify.
    fn driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// A connection string made ready for the driver: its configuration
/// (without our parameters) and the TLS connector they describe.
pub(crate) struct Connect {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Tls,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Parses `url` (a libpq URL or `key=value` string) into the driver's
/// configuration and the TLS connector.
///
/// # Errors
///
/// `invalid_config_value` for a malformed string, an unknown `sslmode`, or
/// an `sslrootcert` that cannot be read or holds no valid certificate (the
/// error names the file).
pub(crate) fn connect_settings(url: &str) -> Result<Connect, Error> {
    let malformed = |cause: String| {
        Error::new(
            ErrorCode::INVALID_CONFIG_VALUE,
            "the PostgreSQL connection string is malformed",
        )
        .with_context("cause", cause)
    };
    let split = split(url).map_err(malformed)?;
    let mode = match split.sslmode.as_deref() {
        Some(value) => SslMode::parse(value)?,
        None => SslMode::Prefer,
    };
    let mut config: tokio_postgres::Config = split
        .rest
        .parse()
        .map_err(|error: tokio_postgres::Error| malformed(error.to_string()))?;
    config.ssl_mode(mode.driver());
    let root_file = split.sslrootcert.map(PathBuf::from);
    let tls = connector(mode, root_file.as_deref())?;
    Ok(Connect { config, tls })
}

/// The rustls connector for `mode`, trusting the certificates of
/// `root_file` or, without one, Mozilla's roots.
fn connector(mode: SslMode, root_file: Option<&Path>) -> Result<Tls, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match root_file {
        Some(path) => read_roots(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let check = match (mode, root_file.is_some()) {
        (SslMode::VerifyFull, _) => Check::ChainAndName,
        (SslMode::VerifyCa, _) | (SslMode::Prefer | SslMode::Require, true) => Check::Chain,
        (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, false) => Check::Nothing,
    };
    let tls_failed = |error: String| {
        Error::new(
            ErrorCode::INTERNAL_ERROR,
            "the TLS configuration for PostgreSQL could not be built",
        )
        .with_context("cause", error)
    };
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|error| tls_failed(error.to_string()))?;
    let verifier = Verifier {
        check,
        webpki,
        provider: Arc::clone(&provider),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_failed(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The CA certificates of the PEM file `path`.
fn read_roots(path: &Path) -> Result<RootCertStore, Error> {
    let invalid = |message: String| {
        Error::new(ErrorCode::INVALID_CONFIG_VALUE, message)
            .with_context("field", "sslrootcert")
            .with_context("file", path.display().to_string())
    };
    // Read once, at open: a small file.
    let pem = std::fs::read(path).map_err(|error| {
        invalid(format!(
            "the sslrootcert file {} cannot be read: {error}",
            path.display()
        ))
    })?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|error| {
            invalid(format!(
                "the sslrootcert file {} is not valid PEM: {error}",
                path.display()
            ))
        })?;
        roots.add(certificate).map_err(|error| {
            invalid(format!(
                "the sslrootcert file {} holds a certificate that is not a valid CA \
                 certificate: {error}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(invalid(format!(
            "the sslrootcert file {} holds no certificate (expected PEM \
             \"-----BEGIN CERTIFICATE-----\" blocks)",
            path.display()
        )));
    }
    Ok(roots)
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing (libpq's `prefer` and `require` without a root file): the
    /// session is encrypted, the server not authenticated.
    Nothing,
    /// The chain to a trusted root, not the name (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    ChainAndName,
}

/// The server certificate verifier of a [`Check`]. The handshake's
/// signatures are always verified (with the certificate's key), so the
/// session is bound to the certificate presented.
#[derive(Debug)]
struct Verifier {
    check: Check,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        // The webpki verifier checks the chain first and the name last, so
        // a name error means the chain was good.
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A connection string with our parameters taken out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    /// The string without `sslmode` and `sslrootcert`, for the driver.
    pub(crate) rest: String,
    pub(crate) sslmode: Option<String>,
    pub(crate) sslrootcert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a
/// `key=value` string (the last of each wins, as in libpq).
///
/// # Errors
///
/// Why the string is malformed (a bad percent escape, an unterminated
/// quote, a key without `=`).
pub(crate) fn split(url: &str) -> Result<Split, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url)
    } else {
        split_key_values(url)
    }
}

fn split_url(url: &str) -> Result<Split, String> {
    // As the driver reads it: credentials end at the first '@', the query
    // starts at the first '?' after them.
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let Some(question) = url[after_credentials..]
        .find('?')
        .map(|offset| after_credentials + offset)
    else {
        return Ok(Split {
            rest: url.to_owned(),
            sslmode: None,
            sslrootcert: None,
        });
    };
    let mut split = Split {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept = Vec::new();
    for pair in url[question + 1..].split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(key)?.as_str() {
            "sslmode" => split.sslmode = Some(percent_decode(value)?),
            "sslrootcert" => split.sslrootcert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    split.rest = url[..question].to_owned();
    if !kept.is_empty() {
        split.rest.push('?');
        split.rest.push_str(&kept.join("&"));
    }
    Ok(split)
}

/// `text` with its percent escapes decoded (the URL's query values).
fn percent_decode(text: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| format!("`{text}` does not decode to UTF-8"))
}

/// The `key=value` form, read as the driver reads it (whitespace around
/// `=`, values quoted with `'`, `\` escaping the next character); the
/// pairs that are not ours are kept as written.
fn split_key_values(text: &str) -> Result<Split, String> {
    let mut split = Split {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key_end = start;
        while let Some((index, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key_end = index + c.len_utf8();
        }
        let key = &text[start..key_end];
        if key.is_empty() {
            return Err("a parameter without a name".to_owned());
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(format!("the parameter `{key}` has no `=`"));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut end = text.len();
        let mut terminated = !quoted;
        while let Some((index, c)) = chars.next() {
            if quoted && c == '\'' {
                end = index + 1;
                terminated = true;
                break;
            }
            if !quoted && c.is_whitespace() {
                end = index;
                break;
            }
            if c == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        if !terminated {
            return Err(format!("the value of `{key}` has no closing quote"));
        }
        match key {
            "sslmode" => split.sslmode = Some(value),
            "sslrootcert" => split.sslrootcert = Some(value),
            _ => kept.push(&text[start..end]),
        }
    }
    split.rest = kept.join(" ");
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_parameters_leave_a_url_and_the_rest_stays() {
        let split = split(
            "postgres://app:p%40ss@db.internal:5433/app?application_name=jido&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            split.rest,
            "postgres://app:p%40ss@db.internal:5433/app?application_name=jido"
        );
        assert_eq!(split.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(split.sslrootcert.as_deref(), Some("/etc/ca.pem"));

        let only_ours = super::split("postgresql://db/app?sslmode=require").unwrap();
        assert_eq!(only_ours.rest, "postgresql://db/app");
        assert_eq!(only_ours.sslmode.as_deref(), Some("require"));

        let none = super::split("postgres://db/app").unwrap();
        assert_eq!(none.rest, "postgres://db/app");
        assert_eq!(none.sslmode, None);

        assert!(super::split("postgres://db/app?sslmode=%FF").is_err());
    }

    #[test]
    fn our_parameters_leave_a_key_value_string_and_the_rest_stays() {
        let split = split(
            "host=db port = 5433 sslmode=verify-ca sslrootcert='/etc/my ca\\'s.pem' \
             options='-c x=1'",
        )
        .unwrap();
        assert_eq!(split.rest, "host=db port = 5433 options='-c x=1'");
        assert_eq!(split.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(split.sslrootcert.as_deref(), Some("/etc/my ca's.pem"));
        let parsed: tokio_postgres::Config = split.rest.parse().unwrap();
        assert_eq!(parsed.get_ports(), [5433]);

        assert!(super::split("host=db sslmode='require").is_err());
        assert!(super::split("host").is_err());
        assert_eq!(super::split("  ").unwrap().rest, "");
    }

    #[test]
    fn modes_and_root_files_are_checked_at_parse() {
        let unknown = connect_settings("host=db sslmode=allow").unwrap_err();
        assert_eq!(unknown.code(), ErrorCode::INVALID_CONFIG_VALUE);

        let missing =
            connect_settings("host=db sslmode=verify-full sslrootcert=/nonexistent/ca.pem")
                .unwrap_err();
        assert_eq!(missing.code(), ErrorCode::INVALID_CONFIG_VALUE);
        assert!(
            missing.message().contains("/nonexistent/ca.pem"),
            "{missing}"
        );

        let directory = tempfile::tempdir().unwrap();
        let garbage = directory.path().join("ca.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let url = format!(
            "host=db sslmode=verify-ca sslrootcert={}",
            garbage.display()
        );
        let empty = connect_settings(&url).unwrap_err();
        assert_eq!(empty.code(), ErrorCode::INVALID_CONFIG_VALUE);
        assert!(empty.message().contains("no certificate"), "{empty}");

        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let invalid = connect_settings(&url).unwrap_err();
        assert_eq!(invalid.code(), ErrorCode::INVALID_CONFIG_VALUE);

        let defaults = connect_settings("host=db").unwrap();
        assert_eq!(defaults.config.get_ssl_mode(), DriverSslMode::Prefer);
        let verifying = connect_settings("postgres://db/app?sslmode=verify-full").unwrap();
        assert_eq!(verifying.config.get_ssl_mode(), DriverSslMode::Require);
    }
}
