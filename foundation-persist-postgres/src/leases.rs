//! Leases on PostgreSQL: the statements behind foundation-persist's
//! [`Leases`](foundation_persist::Leases), on the `foundation_persist_leases`
//! table (`schema.rs`).
//!
//! Every statement judges expiry by the server's clock
//! (`clock_timestamp()`), never a node's, so clock skew between nodes
//! cannot make two of them own a lease. Acquires and releases are group
//! committed by the store's lease task (`lease_batch.rs`: the concurrent
//! ones share one transaction, each still its own statement); renewals,
//! claims and listings are one statement each in their own transaction, on
//! a pooled connection. None goes through the writer: a lease operation
//! must not wait behind a node's write batch. Each is safe to run again
//! after a lost connection: at worst it grants or extends a lease the
//! caller does not know of, which expires.
//!
//! - acquire: an upsert that takes the row only when it is free (no row),
//!   expired, or the same owner's; every grant (a claim too) draws its
//!   token from the `foundation_persist_lease_tokens` sequence, so tokens
//!   never repeat although a release deletes its row;
//! - renew: an update of the rows whose token is still current, locked in
//!   name order (so that two renewals cannot deadlock);
//! - claim: `SELECT ... WHERE expires_at <= clock_timestamp() ... FOR UPDATE
//!   SKIP LOCKED LIMIT n`, then the update of those rows, in one
//!   statement: concurrent claimers skip each other's rows and never take
//!   the same lease;
//! - the fence of a write request is in `ops.rs` (inside the writer's
//!   transaction).
//!
//! This module is not for the fence or for the retry of a dead connection
//! (`backend.rs`).

use std::time::{Duration, SystemTime};

use foundation_error::Error;
use foundation_persist::Lease;
use foundation_persist::lease::lost;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::ops::{as_i64, as_u64};

pub(crate) const ACQUIRE: &str = "INSERT INTO foundation_persist_leases AS l (name, owner, token, expires_at) \
     VALUES ($1, $2, nextval('foundation_persist_lease_tokens'), \
       clock_timestamp() + $3::bigint * interval '1 microsecond') \
     ON CONFLICT (name) DO UPDATE \
     SET owner = EXCLUDED.owner, token = EXCLUDED.token, expires_at = EXCLUDED.expires_at \
     WHERE l.owner IS NULL OR l.owner = EXCLUDED.owner OR l.expires_at <= clock_timestamp() \
     RETURNING l.name, l.owner, l.token, l.expires_at";

pub(crate) const HOLDER: &str = "SELECT owner, \
     GREATEST(0, (EXTRACT(EPOCH FROM (expires_at - clock_timestamp())) * 1000)::bigint) \
     FROM foundation_persist_leases WHERE name = $1";

const RENEW: &str = "WITH wanted AS ( \
       SELECT * FROM unnest($1::text[], $2::bigint[]) AS w(name, token)), \
     locked AS ( \
       SELECT l.name FROM foundation_persist_leases l \
       JOIN wanted w ON l.name = w.name AND l.token = w.token \
       WHERE l.owner IS NOT NULL ORDER BY l.name FOR UPDATE OF l) \
     UPDATE foundation_persist_leases AS l \
     SET expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond' \
     FROM locked WHERE l.name = locked.name \
     RETURNING l.name, l.owner, l.token, l.expires_at";

const CURRENT_TOKENS: &str =
    "SELECT name, token FROM foundation_persist_leases WHERE name = ANY($1::text[])";

pub(crate) const RELEASE: &str = "DELETE FROM foundation_persist_leases \
     WHERE name = $1 AND token = $2 AND owner IS NOT NULL";

const CLAIM: &str = "WITH expired AS ( \
       SELECT name FROM foundation_persist_leases \
       WHERE owner IS NOT NULL AND expires_at <= clock_timestamp() \
         AND starts_with(name, $1) \
       ORDER BY expires_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     UPDATE foundation_persist_leases AS l \
     SET owner = $2, token = nextval('foundation_persist_lease_tokens'), \
         expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond' \
     FROM expired WHERE l.name = expired.name \
     RETURNING l.name, l.owner, l.token, l.expires_at";

/// A ttl as whole microseconds for the statements (at most a day, so it
/// always fits).
pub(crate) fn micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}

/// A lease from a row of `(name, owner, token, expires_at)`.
pub(crate) fn lease(row: &Row) -> Result<Lease, tokio_postgres::Error> {
    let token: i64 = row.try_get(2)?;
    let expires_at: SystemTime = row.try_get(3)?;
    Ok(Lease::new(
        row.try_get(0)?,
        row.try_get(1)?,
        as_u64(token),
        expires_at,
    ))
}

/// Renews each lease still current; one answer per lease, in order.
pub(crate) async fn renew(
    client: &deadpool_postgres::Client,
    leases: &[Lease],
    ttl: Duration,
) -> Result<Vec<Result<Lease, Error>>, tokio_postgres::Error> {
    let names: Vec<&str> = leases.iter().map(|lease| lease.name.as_str()).collect();
    let tokens: Vec<i64> = leases.iter().map(|lease| as_i64(lease.token)).collect();
    let statement = client.prepare_cached(RENEW).await?;
    let rows = client
        .query(&statement, &[&names, &tokens, &micros(ttl)])
        .await?;
    let mut renewed = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let lease = lease(row)?;
        renewed.insert((lease.name.clone(), lease.token), lease);
    }
    let mut current = std::collections::HashMap::new();
    if renewed.len() < leases.len() {
        let statement = client.prepare_cached(CURRENT_TOKENS).await?;
        for row in client.query(&statement, &[&names]).await? {
            let name: String = row.try_get(0)?;
            let token: i64 = row.try_get(1)?;
            current.insert(name, as_u64(token));
        }
    }
    Ok(leases
        .iter()
        .map(
            |lease| match renewed.get(&(lease.name.clone(), lease.token)) {
                Some(renewed) => Ok(renewed.clone()),
                None => Err(lost(
                    &lease.name,
                    lease.token,
                    current.get(&lease.name).copied(),
                )),
            },
        )
        .collect())
}

/// Takes over up to `limit` held, expired leases under `prefix`.
pub(crate) async fn claim_expired(
    client: &deadpool_postgres::Client,
    prefix: &str,
    owner: &str,
    ttl: Duration,
    limit: usize,
) -> Result<Vec<Lease>, tokio_postgres::Error> {
    let statement = client.prepare_cached(CLAIM).await?;
    let limit = as_i64(limit as u64);
    let rows = client
        .query(&statement, &[&prefix, &owner, &micros(ttl), &limit])
        .await?;
    let mut leases = rows.iter().map(lease).collect::<Result<Vec<_>, _>>()?;
    leases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(leases)
}

/// Unreleased leases under `prefix` in name order, from `start` (excluded
/// when `exclusive`), below `end` when the prefix has one.
pub(crate) async fn list(
    client: &deadpool_postgres::Client,
    range: (&str, bool, Option<&str>),
    prefix: &str,
    limit: usize,
) -> Result<Vec<Lease>, tokio_postgres::Error> {
    let (start, exclusive, end) = range;
    let from = if exclusive { ">" } else { ">=" };
    let below = if end.is_some() { " AND name < $4" } else { "" };
    let sql = format!(
        "SELECT name, owner, token, expires_at FROM foundation_persist_leases \
         WHERE owner IS NOT NULL AND name {from} $1{below} AND starts_with(name, $2) \
         ORDER BY name LIMIT $3"
    );
    let statement = client.prepare_cached(&sql).await?;
    let limit = as_i64(limit as u64);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&start, &prefix, &limit];
    if let Some(end) = &end {
        params.push(end);
    }
    let rows = client.query(&statement, &params).await?;
    rows.iter().map(lease).collect()
}
