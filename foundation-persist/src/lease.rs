//! Leases with fencing tokens: who owns a named piece of work (a workflow)
//! among several processes sharing one store, for how long, and a token
//! that lets the store refuse the writes of an owner that lost it.
//!
//! A [`Lease`] names the work, its owner (a node id), a fencing token and
//! an expiry. The contract, kept by every backend (the conformance suite
//! checks it):
//!
//! - **Tokens are monotonic per name.** Every grant of a name (an
//!   acquisition, a re-grant to the same owner, a takeover by
//!   [`Leases::claim_expired`]) gets a token strictly larger than every
//!   token the name had before, also after a release. Tokens come from one
//!   counter per store (a high-water mark: a `SEQUENCE` on PostgreSQL, a
//!   system entry in a redb file, a field in memory), so they grow across
//!   all names and never repeat, even once a name's row is gone.
//! - **One live owner.** [`Leases::acquire`] grants a name that is free
//!   (never granted, or released), expired, or already held by the same
//!   owner; held unexpired by another owner it fails with `already_exists`
//!   (3403: the lease exists and is someone else's; not retryable as such,
//!   wait for it to expire or be released).
//! - **Fencing.** [`WriteBatch::fence`](crate::WriteBatch::fence) makes a
//!   batch commit only while the lease's token is the name's current token
//!   and the lease was not released, checked inside the batch's own write
//!   transaction; otherwise the batch fails with `version_conflict` and
//!   writes nothing. A fence does not check expiry: safety comes from the
//!   token, which a takeover bumps. An owner that paused past its expiry
//!   and comes back may still write as long as nobody took the lease over,
//!   which is harmless: nobody else wrote.
//! - **Expiry is judged by one clock per store**: the store's
//!   [`StoreOptions::clock`](crate::StoreOptions::clock) wall time on the
//!   built-in backends (one process), the database server's clock on
//!   PostgreSQL (several nodes, so that their clock skew cannot matter).
//! - **Released leases stay released**: [`Leases::release`] frees a name
//!   (work done); [`Leases::claim_expired`] never takes a released lease,
//!   only held ones that expired. To hand unfinished work over at once (a
//!   graceful shutdown), [`Leases::renew`] it with a zero ttl: it expires
//!   now and the next claimer takes it.
//!
//! A released lease's row is deleted (the store-wide counter, not the row,
//! keeps its token from repeating), so the lease table holds only held
//! leases, live or expired and not yet claimed: it does not grow with the
//! number of names ever leased. Stores written before the counter existed
//! are brought to it on their first lease operation (the counter starts
//! above every stored token; released rows are deleted).
//!
//! This module is not for the storage of leases (each backend keeps them
//! in its own table) or for what the leased work is (jido-workflow's
//! engine leases `workflow/<id>`).

use std::fmt;
use std::time::{Duration, SystemTime};

use foundation_error::{Error, ErrorCode};

use crate::layout::check_key;
use crate::options::MAX_READ_LIMIT;
use crate::state::check_limit;
use crate::store::Store;

/// The longest lease owner id, in bytes.
pub const MAX_OWNER_BYTES: usize = 256;

/// The longest ttl a lease may be granted or renewed for: one day. Longer
/// ones are refused with `invalid_input` (a lease that outlives its owner
/// for days defeats failover).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A granted lease: `owner` holds `name` with fencing `token` until
/// `expires_at`, unless it renews.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Lease {
    /// What is leased, for example `workflow/order-7`.
    pub name: String,
    /// Who holds it (a node id).
    pub owner: String,
    /// The fencing token: larger for every later grant of `name`.
    pub token: u64,
    /// When it lapses unless renewed, on the clock that judges expiry (see
    /// the module documentation); compare it with that clock only.
    pub expires_at: SystemTime,
}

impl Lease {
    /// A lease as a backend returns it. Backends build leases with this;
    /// users get them from [`Leases`].
    pub fn new(name: String, owner: String, token: u64, expires_at: SystemTime) -> Lease {
        Lease {
            name,
            owner,
            token,
            expires_at,
        }
    }
}

/// The leases of a [`Store`] ([`Store::leases`]): a cheap handle, clone it
/// freely.
///
/// Every method is bounded by the backend's timeouts (the write timeout
/// and commit of a file or PostgreSQL store; inline on the memory store)
/// and fails with a classified error: `invalid_input` for a bad name,
/// owner, ttl or limit; `service_unavailable` once the store is closed;
/// the backend's storage errors otherwise.
#[derive(Clone)]
pub struct Leases {
    store: Store,
}

impl fmt::Debug for Leases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leases")
            .field("store", &self.store.name())
            .finish()
    }
}

impl Leases {
    pub(crate) fn new(store: Store) -> Leases {
        Leases { store }
    }

    /// Grants `owner` the lease of `name` for `ttl`, when `name` is free
    /// (never granted or released), expired, or already held by `owner`
    /// (a re-grant). Every grant gets a token larger than any `name` had.
    ///
    /// # Errors
    ///
    /// `already_exists` when another owner holds an unexpired lease of
    /// `name` (context `owner` and `expires_in_ms`); `invalid_input` for an
    /// empty or oversized name or owner, or a ttl of zero or above
    /// [`MAX_LEASE_TTL`].
    ///
    /// # Cancel safety
    ///
    /// A dropped future may still grant the lease (the caller then does not
    /// know its token); it expires after `ttl`, or a later `acquire` by the
    /// same owner re-grants it.
    pub async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Lease, Error> {
        check_name(name)?;
        check_owner(owner)?;
        check_ttl(ttl, false)?;
        self.open()?
            .acquire_lease(name.to_owned(), owner.to_owned(), ttl)
            .await
    }

    /// Extends `lease` to `ttl` from now, if its token is still current
    /// and it was not released; a zero `ttl` expires it now, so that
    /// [`claim_expired`](Leases::claim_expired) hands it to another owner
    /// at once. Returns the lease with its new expiry (same token).
    ///
    /// # Errors
    ///
    /// `version_conflict` when the lease was taken over or released;
    /// `invalid_input` for a ttl above [`MAX_LEASE_TTL`].
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the lease; either way
    /// the token is unchanged, so renewing again is safe.
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, Error> {
        let mut answers = self.renew_all(std::slice::from_ref(lease), ttl).await?;
        answers.pop().unwrap_or_else(|| {
            Err(Error::new(
                ErrorCode::INTERNAL_ERROR,
                "the backend answered a renewal without its lease",
            ))
        })
    }

    /// Renews several leases in one request (a heartbeat): one answer per
    /// lease, in order, each as [`renew`](Leases::renew) would give it.
    /// The outer error is for the request as a whole (bad input, a closed
    /// store, a storage failure).
    ///
    /// # Errors
    ///
    /// `invalid_input` for more than [`MAX_READ_LIMIT`] leases or a ttl
    /// above [`MAX_LEASE_TTL`]; otherwise as for [`renew`](Leases::renew).
    ///
    /// # Cancel safety
    ///
    /// As for [`renew`](Leases::renew).
    pub async fn renew_all(
        &self,
        leases: &[Lease],
        ttl: Duration,
    ) -> Result<Vec<Result<Lease, Error>>, Error> {
        check_ttl(ttl, true)?;
        if leases.len() > MAX_READ_LIMIT {
            return Err(Error::new(
                ErrorCode::INVALID_INPUT,
                format!("one renewal takes at most {MAX_READ_LIMIT} leases"),
            )
            .with_context("leases", leases.len()));
        }
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let answers = self.open()?.renew_leases(leases.to_vec(), ttl).await?;
        if answers.len() != leases.len() {
            return Err(Error::new(
                ErrorCode::INTERNAL_ERROR,
                format!(
                    "the backend answered a renewal of {} leases with {} answers",
                    leases.len(),
                    answers.len()
                ),
            )
            .with_context("store", self.store.name()));
        }
        Ok(answers)
    }

    /// Frees `lease`'s name if its token is still current (the work is
    /// done); no effect otherwise. The token is kept: the next grant of the
    /// name gets a larger one. A released lease is never claimed by
    /// [`claim_expired`](Leases::claim_expired); [`acquire`](Leases::acquire)
    /// grants it again.
    ///
    /// # Errors
    ///
    /// The backend's storage errors; `service_unavailable` once closed.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have released the lease; releasing
    /// again is harmless.
    pub async fn release(&self, lease: &Lease) -> Result<(), Error> {
        self.open()?.release_lease(lease.clone()).await
    }

    /// Takes over up to `limit` leases whose name starts with `prefix`,
    /// held by anyone (this owner included) and expired, each with a new
    /// token, for `ttl`. Concurrent claimers never get the same lease.
    /// Released leases are not claimed.
    ///
    /// # Errors
    ///
    /// `invalid_input` for an empty or oversized owner, a ttl of zero or
    /// above [`MAX_LEASE_TTL`], a limit above [`MAX_READ_LIMIT`] (a limit
    /// of zero claims nothing), or a prefix longer than a name may be.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may have claimed leases the caller then does not
    /// know of: they expire after `ttl` and are claimed again.
    pub async fn claim_expired(
        &self,
        prefix: &str,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Lease>, Error> {
        check_prefix(prefix)?;
        check_owner(owner)?;
        check_ttl(ttl, false)?;
        check_limit(limit)?;
        self.open()?
            .claim_expired_leases(prefix.to_owned(), owner.to_owned(), ttl, limit)
            .await
    }

    /// Up to `limit` leases whose name starts with `prefix`, in name order
    /// (byte-wise), after `after` when given, for dashboards. Expired
    /// leases are included (compare `expires_at` with the store's clock);
    /// released ones are not.
    ///
    /// # Errors
    ///
    /// `invalid_input` for a limit above [`MAX_READ_LIMIT`] or an
    /// oversized prefix.
    pub async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Lease>, Error> {
        check_prefix(prefix)?;
        check_limit(limit)?;
        self.open()?
            .list_leases(prefix.to_owned(), after.map(str::to_owned), limit)
            .await
    }

    fn open(&self) -> Result<&dyn crate::backend::Backend, Error> {
        if self.store.is_closed() {
            return Err(crate::classify::closed());
        }
        Ok(&**self.store.backend())
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    check_key(name, "lease name").map_err(|error| error.with_context("lease", name))
}

fn check_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.len() > crate::options::MAX_KEY_BYTES {
        return Err(Error::new(
            ErrorCode::INVALID_INPUT,
            "a lease prefix is longer than a lease name may be",
        )
        .with_context("length", prefix.len()));
    }
    Ok(())
}

fn check_owner(owner: &str) -> Result<(), Error> {
    if owner.is_empty() || owner.len() > MAX_OWNER_BYTES {
        return Err(Error::new(
            ErrorCode::INVALID_INPUT,
            format!("a lease owner is 1 to {MAX_OWNER_BYTES} bytes long"),
        )
        .with_context("length", owner.len()));
    }
    Ok(())
}

fn check_ttl(ttl: Duration, zero_allowed: bool) -> Result<(), Error> {
    if (ttl.is_zero() && !zero_allowed) || ttl > MAX_LEASE_TTL {
        return Err(Error::new(
            ErrorCode::INVALID_INPUT,
            format!(
                "a lease ttl is {} to one day",
                if zero_allowed {
                    "zero"
                } else {
                    "more than zero"
                }
            ),
        )
        .with_context("ttl_ms", ttl.as_millis()));
    }
    Ok(())
}

/// One name's row as the built-in backends keep it: the current token,
/// the holder (`None` once released) and the expiry in microseconds since
/// the Unix epoch on the store's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseRow {
    pub(crate) owner: Option<String>,
    pub(crate) token: u64,
    pub(crate) expires_micros: u64,
}

/// Microseconds since the Unix epoch (0 before it, saturating after).
pub(crate) fn micros(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// The instant `micros` microseconds after the Unix epoch.
pub(crate) fn from_micros(micros: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(micros)
}

fn ttl_micros(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX)
}

impl LeaseRow {
    fn expired(&self, now: u64) -> bool {
        self.expires_micros <= now
    }

    pub(crate) fn lease(&self, name: &str) -> Option<Lease> {
        self.owner.as_ref().map(|owner| Lease {
            name: name.to_owned(),
            owner: owner.clone(),
            token: self.token,
            expires_at: from_micros(self.expires_micros),
        })
    }
}

/// The rules of the built-in backends, on one name's row at `now`
/// (microseconds): the new row of an acquisition, with `token` (the
/// store's next token, which the backend then counts as issued), or why it
/// is refused.
pub(crate) fn acquire_row(
    name: &str,
    row: Option<&LeaseRow>,
    owner: &str,
    ttl: Duration,
    now: u64,
    token: u64,
) -> Result<LeaseRow, Error> {
    if let Some(row) = row
        && let Some(holder) = &row.owner
        && holder != owner
        && !row.expired(now)
    {
        return Err(held_by_another(
            name,
            holder,
            Duration::from_micros(row.expires_micros - now),
        ));
    }
    Ok(LeaseRow {
        owner: Some(owner.to_owned()),
        token,
        expires_micros: now.saturating_add(ttl_micros(ttl)),
    })
}

/// The new row of a renewal of `lease`, or `version_conflict`.
pub(crate) fn renew_row(
    lease: &Lease,
    row: Option<&LeaseRow>,
    ttl: Duration,
    now: u64,
) -> Result<LeaseRow, Error> {
    match row {
        Some(row) if row.token == lease.token && row.owner.is_some() => Ok(LeaseRow {
            owner: row.owner.clone(),
            token: row.token,
            expires_micros: now.saturating_add(ttl_micros(ttl)),
        }),
        _ => Err(lost(&lease.name, lease.token, row.map(|row| row.token))),
    }
}

/// Whether a release of `lease` deletes `row`: only while its token is
/// current (otherwise there is nothing to do).
pub(crate) fn releases(lease: &Lease, row: Option<&LeaseRow>) -> bool {
    row.is_some_and(|row| row.token == lease.token && row.owner.is_some())
}

/// Whether `row` is claimable at `now`, and its row once claimed with
/// `token` (the store's next token, which the backend then counts as
/// issued).
pub(crate) fn claim_row(
    row: &LeaseRow,
    owner: &str,
    ttl: Duration,
    now: u64,
    token: u64,
) -> Option<LeaseRow> {
    if row.owner.is_none() || !row.expired(now) {
        return None;
    }
    Some(LeaseRow {
        owner: Some(owner.to_owned()),
        token,
        expires_micros: now.saturating_add(ttl_micros(ttl)),
    })
}

/// Checks a fence: `token` must be `name`'s current token, not released.
pub(crate) fn check_fence(name: &str, token: u64, row: Option<&LeaseRow>) -> Result<(), Error> {
    match row {
        Some(row) if row.token == token && row.owner.is_some() => Ok(()),
        _ => Err(lost(name, token, row.map(|row| row.token))),
    }
}

/// The `already_exists` of an acquisition refused because another owner
/// holds the lease. Every backend words it alike.
pub fn held_by_another(name: &str, holder: &str, expires_in: Duration) -> Error {
    Error::new(
        ErrorCode::ALREADY_EXISTS,
        format!("the lease {name} is held by {holder}"),
    )
    .with_context("lease", name)
    .with_context("owner", holder)
    .with_context("expires_in_ms", expires_in.as_millis())
}

/// The `version_conflict` of a renewal or a fence whose token is no
/// longer current (`current`: the name's token now, if it has a row).
/// Every backend words it alike.
pub fn lost(name: &str, token: u64, current: Option<u64>) -> Error {
    Error::new(
        ErrorCode::VERSION_CONFLICT,
        format!("the lease {name} with token {token} is no longer held (taken over or released)"),
    )
    .with_context("lease", name)
    .with_context("token", token)
    .with_context(
        "current_token",
        current.map_or_else(|| "none".to_owned(), |token| token.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(owner: &str, token: u64, expires: u64) -> LeaseRow {
        LeaseRow {
            owner: Some(owner.to_owned()),
            token,
            expires_micros: expires,
        }
    }

    #[test]
    fn acquisition_follows_the_rules() {
        let ttl = Duration::from_secs(1);
        let first = acquire_row("w", None, "a", ttl, 10, 1).unwrap();
        assert_eq!(first, held("a", 1, 1_000_010));
        let error = acquire_row("w", Some(&first), "b", ttl, 20, 2).unwrap_err();
        assert_eq!(error.code(), ErrorCode::ALREADY_EXISTS);
        assert_eq!(
            acquire_row("w", Some(&first), "a", ttl, 20, 2)
                .unwrap()
                .token,
            2
        );
        let later = acquire_row("w", Some(&first), "b", ttl, 1_000_010, 2).unwrap();
        assert_eq!(later, held("b", 2, 2_000_010));
        assert!(releases(&first.lease("w").unwrap(), Some(&first)));
    }

    #[test]
    fn stale_tokens_are_refused() {
        let row = held("a", 3, 100);
        let stale = held("a", 2, 100).lease("w").unwrap();
        let error = renew_row(&stale, Some(&row), Duration::ZERO, 0).unwrap_err();
        assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT);
        assert!(!releases(&stale, Some(&row)));
        assert!(!releases(&stale, None));
        assert!(check_fence("w", 2, Some(&row)).is_err());
        assert!(check_fence("w", 3, Some(&row)).is_ok());
        assert!(check_fence("w", 1, None).is_err());
    }

    #[test]
    fn only_held_expired_leases_are_claimed() {
        let ttl = Duration::from_micros(5);
        assert!(claim_row(&held("a", 1, 100), "b", ttl, 99, 2).is_none());
        assert_eq!(
            claim_row(&held("a", 1, 100), "b", ttl, 100, 7),
            Some(held("b", 7, 105))
        );
        let released = LeaseRow {
            owner: None,
            token: 4,
            expires_micros: 0,
        };
        assert!(claim_row(&released, "b", ttl, 100, 2).is_none());
    }

    #[test]
    fn ttls_are_bounded() {
        assert!(check_ttl(Duration::ZERO, false).is_err());
        assert!(check_ttl(Duration::ZERO, true).is_ok());
        assert!(check_ttl(MAX_LEASE_TTL + Duration::from_secs(1), true).is_err());
        assert!(check_owner("").is_err());
        assert!(check_owner(&"o".repeat(MAX_OWNER_BYTES + 1)).is_err());
    }
}
