//! A bare axum server for the `wrk` comparison of `GET /api/v1/flags`
//! (`benches/wrk_flags.sh`): it answers that path with the JSON value read
//! from a file (the body jido-system answered, so both send the same
//! bytes), serialized per request as jido-system does.
//!
//! It is not a benchmark by itself and not part of the product.
//!
//! Usage: `bare_axum_flags ADDRESS BODY_FILE`.

use axum::Json;
use axum::routing::get;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let usage = "usage: bare_axum_flags ADDRESS BODY_FILE";
    let address = arguments.next().ok_or(usage)?;
    let body_file = arguments.next().ok_or(usage)?;
    let body: Value = serde_json::from_str(&std::fs::read_to_string(body_file)?)?;
    let router = axum::Router::new().route(
        "/api/v1/flags",
        get(move || {
            let body = body.clone();
            async move { Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
