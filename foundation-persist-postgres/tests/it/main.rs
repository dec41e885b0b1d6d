//! The PostgreSQL backend against a real server: a throwaway cluster
//! started by the harness (`foundation_persist_postgres::testing`), shared
//! by the tests of this binary, with a fresh database per test. Without
//! PostgreSQL installed, each test says loudly on stderr that it was
//! skipped (or fails, with `FOUNDATION_REQUIRE_POSTGRES=1`).

mod changes;
mod cluster;
mod conformance;
mod faults;
mod group_commit;
mod leases;
mod listing;
mod schema;
mod server_errors;
mod tls;
