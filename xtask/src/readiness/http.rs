//! A minimal HTTP/1.1 client over `std::net`, for the checks against a
//! running server: one request per connection (`Connection: close`),
//! bounded connect, read and write times, `Content-Length` and chunked
//! bodies. Plain `http://` only: the server listens on loopback by default,
//! and a TLS stack is not worth its build time in xtask.
//!
//! This module is not a general client: no redirects, no keep-alive, no
//! compression.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The bound of connecting, and of each read and write.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response read (a `/metrics` page is a few kilobytes).
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// A base URL: `http://host:port` and an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    host: String,
    port: u16,
    prefix: String,
}

impl BaseUrl {
    pub(crate) fn parse(url: &str) -> Result<BaseUrl, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("`{url}`: only http:// URLs are supported (the server listens on loopback)")
        })?;
        let (authority, prefix) = match rest.find('/') {
            Some(index) => (&rest[..index], rest[index..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("`{url}`: the port `{port}` is not a number"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        Ok(BaseUrl {
            host: host.to_owned(),
            port,
            prefix: prefix.to_owned(),
        })
    }

    /// The full URL of `path`, for messages.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}:{}{}{path}", self.host, self.port, self.prefix)
    }
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.body).map_err(|error| format!("the body is not JSON: {error}"))
    }
}

/// Sends one request. `body` is JSON when given; `token` goes in
/// `Authorization: Bearer`.
pub(crate) fn request(
    base: &BaseUrl,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    token: Option<&str>,
) -> Result<Response, String> {
    let address = (base.host.as_str(), base.port)
        .to_socket_addrs()
        .map_err(|error| format!("{}: cannot resolve: {error}", base.url(path)))?
        .next()
        .ok_or_else(|| format!("{}: no address", base.url(path)))?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)
        .map_err(|error| format!("{}: cannot connect: {error}", base.url(path)))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|error| format!("{}: {error}", base.url(path)))?;
    let body = body.map(serde_json::Value::to_string);
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nAccept: */*\r\nUser-Agent: cargo-xtask-readiness\r\n",
        base.prefix, base.host, base.port
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    match &body {
        Some(body) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => head.push_str("Content-Length: 0\r\n\r\n"),
    }
    stream
        .write_all(head.as_bytes())
        .map_err(|error| format!("{}: cannot send: {error}", base.url(path)))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|error| format!("{}: cannot read the answer: {error}", base.url(path)))?;
    parse_response(&raw).map_err(|message| format!("{}: {message}", base.url(path)))
}

/// Parses a whole HTTP/1.1 response.
pub(crate) fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or("the answer has no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(name, value)| {
        name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok());
        match length {
            Some(length) if length <= rest.len() => rest[..length].to_vec(),
            Some(length) => {
                return Err(format!(
                    "the body is shorter ({} bytes) than its Content-Length ({length})",
                    rest.len()
                ));
            }
            None => rest.to_vec(),
        }
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or("a chunk size line is not terminated")?;
        let size_text = String::from_utf8_lossy(&rest[..end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size `{size_text}`"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("a chunk is cut short".to_owned());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_bad_ones_refused() {
        let base = BaseUrl::parse("http://127.0.0.1:4000/").expect("valid");
        assert_eq!(base.url("/metrics"), "http://127.0.0.1:4000/metrics");
        let base = BaseUrl::parse("http://localhost:8080/jido").expect("valid");
        assert_eq!(base.url("/health"), "http://localhost:8080/jido/health");
        assert!(BaseUrl::parse("https://example.org").is_err());
        assert!(BaseUrl::parse("http://host:port").is_err());
        assert!(BaseUrl::parse("http://:80").is_err());
    }

    #[test]
    fn plain_and_chunked_bodies_are_read() {
        let plain = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
            .expect("valid");
        assert_eq!((plain.status, plain.body.as_str()), (200, "hello"));
        let chunked = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .expect("valid");
        assert_eq!(
            (chunked.status, chunked.body.as_str()),
            (404, "hello world")
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
