//! The lease contract on the embedded implementation: the newest grant
//! fences off the older ones.

use std::time::Duration;

use foundation_error::ErrorCode;
use jido_workflow::{EmbeddedLeases, LeaseManager};

use crate::support::clock;

#[tokio::test(start_paused = true)]
async fn a_newer_grant_fences_off_the_older_one() {
    let clock = clock();
    let leases = EmbeddedLeases::new(clock.clone(), Duration::from_secs(30));
    let first = leases.acquire("wf-1", "node-a").expect("granted");
    assert_eq!(first.owner, "node-a");
    assert_eq!(first.expires_at, clock.wall() + Duration::from_secs(30));
    assert!(leases.check(&first).is_ok());

    let second = leases.acquire("wf-1", "node-a").expect("granted");
    assert!(second.token > first.token);
    assert_eq!(
        leases.check(&first).unwrap_err().code(),
        ErrorCode::VERSION_CONFLICT
    );
    assert!(leases.check(&second).is_ok());

    // Releasing the stale lease does not release the current one.
    leases.release(&first);
    assert!(leases.check(&second).is_ok());
    assert_eq!(leases.held(), 1);
    leases.release(&second);
    assert_eq!(leases.held(), 0);
    assert!(leases.check(&second).is_err());
}
