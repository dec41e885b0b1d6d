use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use foundation_error::{Error, ErrorCode, Freshness, StaleCache, with_fallback};

#[tokio::test]
async fn the_fallback_runs_only_for_infrastructure_errors() {
    let used = with_fallback(
        async { Err::<u32, _>(Error::new(ErrorCode::NETWORK_ERROR, "reset")) },
        |error| async move {
            assert_eq!(error.code(), ErrorCode::NETWORK_ERROR);
            Ok(7)
        },
    )
    .await;
    assert_eq!(used.unwrap(), 7);

    for error in [
        Error::validation("bad"),
        Error::business("no"),
        Error::system("bug"),
    ] {
        let code = error.code();
        let result = with_fallback(async move { Err::<u32, _>(error) }, |_| async {
            panic!("the fallback must not run")
        })
        .await;
        assert_eq!(result.unwrap_err().code(), code);
    }

    let success = with_fallback(async { Ok::<_, Error>(1) }, |_| async { Ok(2) }).await;
    assert_eq!(success.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_cache_serves_fresh_values_without_loading() {
    let cache = StaleCache::new(Duration::from_secs(10));
    let loads = AtomicU32::new(0);
    for _ in 0..3 {
        let value = cache
            .get_or_load("k", || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(5)
            })
            .await
            .unwrap();
        assert_eq!(value.value, 5);
        assert_eq!(value.freshness, Freshness::Fresh);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_cache_serves_stale_values_on_infrastructure_errors_only() {
    let cache = StaleCache::new(Duration::from_secs(10)).max_stale(Duration::from_secs(60));
    cache
        .get_or_load(1, || async { Ok::<_, Error>("v1") })
        .await
        .unwrap();

    tokio::time::advance(Duration::from_secs(20)).await;
    let stale = cache
        .get_or_load(1, || async { Err(Error::timeout("source down")) })
        .await
        .unwrap();
    assert_eq!(stale.value, "v1");
    assert_eq!(
        stale.freshness,
        Freshness::Stale {
            age: Duration::from_secs(20)
        }
    );

    let refused = cache
        .get_or_load(1, || async { Err(Error::validation("bad key")) })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::INVALID_INPUT);

    tokio::time::advance(Duration::from_secs(60)).await;
    let too_old = cache
        .get_or_load(1, || async { Err(Error::timeout("still down")) })
        .await
        .unwrap_err();
    assert_eq!(too_old.code(), ErrorCode::TIMEOUT);

    let reloaded = cache.get_or_load(1, || async { Ok("v2") }).await.unwrap();
    assert_eq!(reloaded.value, "v2");
    assert_eq!(reloaded.freshness, Freshness::Fresh);
}

#[tokio::test(start_paused = true)]
async fn the_cache_is_bounded() {
    let cache = StaleCache::new(Duration::from_secs(10)).capacity(2);
    for key in 0..3 {
        cache
            .get_or_load(key, || async move { Ok::<_, Error>(key) })
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    assert_eq!(cache.len(), 2);
    // Key 0, the oldest, was evicted: loading it again calls the source.
    let loads = AtomicU32::new(0);
    cache
        .get_or_load(0, || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(0)
        })
        .await
        .unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_manual_clock_ages_the_cached_values() {
    let clock = foundation_error::clock::ManualClock::new();
    let cache = StaleCache::new(Duration::from_secs(10)).clock(clock.clone());
    let loads = AtomicU32::new(0);
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Error>(5)
    };
    cache.get_or_load("key", load).await.unwrap();
    clock.advance(Duration::from_secs(9));
    cache.get_or_load("key", load).await.unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 1, "still fresh at 9 s");
    clock.advance(Duration::from_secs(5));
    let stale = cache
        .get_or_load("key", || async { Err(Error::timeout("down")) })
        .await
        .unwrap();
    assert_eq!(
        stale.freshness,
        Freshness::Stale {
            age: Duration::from_secs(14)
        }
    );
}
