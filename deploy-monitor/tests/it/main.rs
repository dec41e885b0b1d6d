//! Integration tests of deploy-monitor.
