//! Operations: the checks against a running server (`--url`) and the
//! runbook's commands.
//!
//! - Monitoring active: `GET /health` answers 2xx and `GET /metrics`
//!   carries every health gauge deploy-monitor declares (the names are read
//!   from `deploy-monitor/src/metrics.rs`: each `describe_gauge!` of a
//!   constant there).
//! - Alerts configured: `GET /api/v1/alerts` answers JSON, and
//!   `GET /api/v1/rollout` shows health checks with thresholds (the
//!   automatic-rollback rules), at least one per plan metric.
//! - Rollback tested: a drill on the live server, with the API token: roll
//!   back one phase and advance again (or, at phase 0, advance and roll
//!   back), checking the phase after each step and that it ends where it
//!   began. Its advance is forced (`"force": true`, recorded as a forced
//!   advance), since the rules refuse an advance within an hour of a
//!   rollback. It changes the live rollout for the length of the drill.
//! - Performance acceptable: the p99 of a short sample of `GET /health`
//!   is under the plan's 100 ms.
//! - Runbook commands are real (static): see `runbook.rs`.
//!
//! The response shapes read here are jido-system's (`/api/v1/rollout` has
//! the current phase as `phase`; `current_phase` is also read); its
//! integration test `runbook` runs these checks against the real server,
//! every one passing. This module is not for the server, which is
//! jido-system's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use syn::visit::Visit;

use super::http::{self, BaseUrl};
use super::{Category, CheckDef, Env, Finding, Kind, Outcome, Tree, runbook};

pub(crate) fn checks() -> Vec<CheckDef> {
    let check = |name, kind, run| CheckDef {
        category: Category::Operations,
        name,
        kind,
        run,
    };
    vec![
        check("Monitoring active", Kind::Server, monitoring),
        check("Alerts configured", Kind::Server, alerts),
        check("Rollback tested", Kind::Server, rollback_drill),
        check("Performance acceptable", Kind::Server, performance),
        check("Runbook commands are real", Kind::Static, runbook_commands),
    ]
}

/// Where deploy-monitor declares its metric names.
const METRICS_FILE: &str = "deploy-monitor/src/metrics.rs";
/// The plan's latency bound.
pub(crate) const P99_LIMIT: Duration = Duration::from_millis(100);
/// The number of requests in the latency sample.
pub(crate) const SAMPLES: usize = 200;
/// The plan's automatic-rollback metrics: at least this many thresholds.
const MIN_THRESHOLDS: usize = 4;

fn base(env: &Env) -> Result<BaseUrl, Outcome> {
    let url = env.url.as_deref().unwrap_or_default();
    BaseUrl::parse(url).map_err(|message| Outcome::fail("bad --url", Finding::new(url, 0, message)))
}

/// The gauge names deploy-monitor declares (`describe_gauge!(CONST, ..)`).
pub(crate) fn health_gauges(tree: &Tree) -> Result<Vec<String>, Finding> {
    let file = tree.file(METRICS_FILE).ok_or_else(|| {
        Finding::new(
            METRICS_FILE,
            0,
            "not in the tree: the health gauges are unknown",
        )
    })?;
    let constants: HashMap<String, String> = file
        .syntax
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Const(constant) => match &*constant.expr {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(value),
                    ..
                }) => Some((constant.ident.to_string(), value.value())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    struct Described(Vec<String>);
    impl<'ast> Visit<'ast> for Described {
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            if mac
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "describe_gauge")
                && let Some(proc_macro2::TokenTree::Ident(first)) =
                    mac.tokens.clone().into_iter().next()
            {
                self.0.push(first.to_string());
            }
        }
    }
    let mut described = Described(Vec::new());
    described.visit_file(&file.syntax);
    let gauges: Vec<String> = described
        .0
        .iter()
        .filter_map(|name| constants.get(name).cloned())
        .collect();
    if gauges.is_empty() {
        return Err(Finding::new(
            METRICS_FILE,
            0,
            "no `describe_gauge!` of a name constant: the health gauges are unknown",
        ));
    }
    Ok(gauges)
}

/// Whether the Prometheus text has a sample or a `# TYPE` of `name`.
fn has_metric(text: &str, name: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start();
        let sample = line
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'));
        let typed = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with(' '));
        sample || typed
    })
}

pub(crate) fn monitoring_findings(tree: &Tree, base: &BaseUrl) -> (usize, Vec<Finding>) {
    let mut findings = Vec::new();
    match http::request(base, "GET", "/health", None, None) {
        Ok(response) if (200..300).contains(&response.status) => {}
        Ok(response) => findings.push(Finding::new(
            base.url("/health"),
            0,
            format!("answered {}: {}", response.status, response.body.trim()),
        )),
        Err(message) => findings.push(Finding::new(base.url("/health"), 0, message)),
    }
    let gauges = match health_gauges(tree) {
        Ok(gauges) => gauges,
        Err(finding) => {
            findings.push(finding);
            return (0, findings);
        }
    };
    match http::request(base, "GET", "/metrics", None, None) {
        Ok(response) if response.status == 200 => {
            let missing: Vec<&str> = gauges
                .iter()
                .filter(|gauge| !has_metric(&response.body, gauge))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                findings.push(Finding::new(
                    base.url("/metrics"),
                    0,
                    format!(
                        "the health gauges {} are missing (a new server publishes them at the monitor's first evaluation, one analysis interval after start)",
                        missing.join(", ")
                    ),
                ));
            }
        }
        Ok(response) => findings.push(Finding::new(
            base.url("/metrics"),
            0,
            format!("answered {} instead of 200", response.status),
        )),
        Err(message) => findings.push(Finding::new(base.url("/metrics"), 0, message)),
    }
    (gauges.len(), findings)
}

fn monitoring(env: &Env) -> Outcome {
    let base = match base(env) {
        Ok(base) => base,
        Err(outcome) => return outcome,
    };
    let (gauges, findings) = monitoring_findings(&env.tree, &base);
    Outcome::from_findings(
        format!("/health answers and /metrics carries the {gauges} health gauges"),
        findings,
    )
}

/// The objects holding a numeric `threshold`, anywhere in `value`.
fn thresholds(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => {
            usize::from(
                map.get("threshold")
                    .is_some_and(serde_json::Value::is_number),
            ) + map.values().map(thresholds).sum::<usize>()
        }
        serde_json::Value::Array(items) => items.iter().map(thresholds).sum(),
        _ => 0,
    }
}

pub(crate) fn alert_findings(base: &BaseUrl) -> (usize, Vec<Finding>) {
    let mut findings = Vec::new();
    match http::request(base, "GET", "/api/v1/alerts", None, None) {
        Ok(response) if response.status == 200 => {
            if let Err(message) = response.json() {
                findings.push(Finding::new(base.url("/api/v1/alerts"), 0, message));
            }
        }
        Ok(response) => findings.push(Finding::new(
            base.url("/api/v1/alerts"),
            0,
            format!("answered {} instead of 200", response.status),
        )),
        Err(message) => findings.push(Finding::new(base.url("/api/v1/alerts"), 0, message)),
    }
    let mut count = 0;
    match http::request(base, "GET", "/api/v1/rollout", None, None).and_then(|response| {
        if response.status == 200 {
            response.json()
        } else {
            Err(format!("answered {} instead of 200", response.status))
        }
    }) {
        Ok(rollout) => {
            count = thresholds(&rollout);
            if rollout
                .get("health")
                .is_some_and(serde_json::Value::is_null)
            {
                findings.push(Finding::new(
                    base.url("/api/v1/rollout"),
                    0,
                    "no health evaluation yet (`health` is null): the rules have not been applied; run again after one analysis interval",
                ));
            } else if count < MIN_THRESHOLDS {
                findings.push(Finding::new(
                    base.url("/api/v1/rollout"),
                    0,
                    format!(
                        "{count} health checks with a threshold; the plan's automatic rollback needs at least {MIN_THRESHOLDS} (error rate, restarts, delivery, recovery)"
                    ),
                ));
            }
        }
        Err(message) => findings.push(Finding::new(base.url("/api/v1/rollout"), 0, message)),
    }
    (count, findings)
}

fn alerts(env: &Env) -> Outcome {
    let base = match base(env) {
        Ok(base) => base,
        Err(outcome) => return outcome,
    };
    let (count, findings) = alert_findings(&base);
    Outcome::from_findings(
        format!("{count} health thresholds configured; /api/v1/alerts answers"),
        findings,
    )
}

/// The current phase in a `/api/v1/rollout` answer.
pub(crate) fn phase_of(rollout: &serde_json::Value) -> Option<u64> {
    ["phase", "current_phase"]
        .iter()
        .find_map(|key| match rollout.get(key)? {
            serde_json::Value::Number(number) => number.as_u64(),
            serde_json::Value::Object(phase) => ["index", "number", "phase"]
                .iter()
                .find_map(|inner| phase.get(*inner)?.as_u64()),
            _ => None,
        })
}

fn current_phase(base: &BaseUrl) -> Result<u64, String> {
    let response = http::request(base, "GET", "/api/v1/rollout", None, None)?;
    if response.status != 200 {
        return Err(format!("GET /api/v1/rollout answered {}", response.status));
    }
    phase_of(&response.json()?).ok_or_else(|| "GET /api/v1/rollout has no `phase`".to_owned())
}

fn step(base: &BaseUrl, token: &str, action: &str, expected: u64) -> Result<(), String> {
    let path = format!("/api/v1/rollout/{action}");
    let reason = format!("readiness rollback drill: {action}");
    // The drill's advance is forced: the rules (healthy for the phase's
    // minimum, an hour's quiet after a rollback) would refuse it.
    let body = if action == "advance" {
        serde_json::json!({ "reason": reason, "force": true })
    } else {
        serde_json::json!({ "reason": reason })
    };
    let response = http::request(base, "POST", &path, Some(&body), Some(token))?;
    if !(200..300).contains(&response.status) {
        return Err(format!(
            "POST {path} answered {}: {}",
            response.status,
            response.body.trim()
        ));
    }
    let phase = current_phase(base)?;
    if phase != expected {
        return Err(format!(
            "after POST {path} the phase is {phase}, expected {expected}"
        ));
    }
    Ok(())
}

/// The drill; `Ok` with the phases it went through.
pub(crate) fn drill(base: &BaseUrl, token: &str) -> Result<String, String> {
    let start = current_phase(base)?;
    let (first, second, middle) = if start > 0 {
        ("rollback", "advance", start - 1)
    } else {
        ("advance", "rollback", start + 1)
    };
    step(base, token, first, middle)?;
    step(base, token, second, start).map_err(|message| {
        format!(
            "{message}; THE ROLLOUT WAS LEFT AT PHASE {middle} (it was {start}): restore it by hand"
        )
    })?;
    Ok(format!(
        "{first} {start} → {middle}, {second} {middle} → {start}"
    ))
}

fn rollback_drill(env: &Env) -> Outcome {
    let base = match base(env) {
        Ok(base) => base,
        Err(outcome) => return outcome,
    };
    let Some(token) = env.token.as_deref() else {
        return Outcome::fail(
            "the drill needs the API token",
            Finding::new(
                base.url("/api/v1/rollout"),
                0,
                "give --token TOKEN or set JIDO_TOKEN",
            ),
        );
    };
    match drill(&base, token) {
        Ok(phases) => Outcome::pass(format!(
            "rollback performed and undone on the live server ({phases})"
        )),
        Err(message) => Outcome::fail(
            "the rollback drill failed",
            Finding::new(base.url("/api/v1/rollout"), 0, message),
        ),
    }
}

/// The p99 of `samples` sequential `GET /health`, or the first failure.
pub(crate) fn p99(base: &BaseUrl, samples: usize) -> Result<Duration, String> {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let response = http::request(base, "GET", "/health", None, None)?;
        latencies.push(started.elapsed());
        if !(200..300).contains(&response.status) {
            return Err(format!("GET /health answered {}", response.status));
        }
    }
    latencies.sort_unstable();
    // Nearest rank.
    let rank = (samples * 99).div_ceil(100).max(1);
    latencies
        .get(rank - 1)
        .copied()
        .ok_or_else(|| "no sample".to_owned())
}

pub(crate) fn performance_outcome(base: &BaseUrl, samples: usize, limit: Duration) -> Outcome {
    match p99(base, samples) {
        Ok(p99) if p99 < limit => Outcome::pass(format!(
            "p99 of {samples} GET /health: {:.2} ms (limit {} ms)",
            p99.as_secs_f64() * 1000.0,
            limit.as_millis()
        )),
        Ok(p99) => Outcome::fail(
            "too slow",
            Finding::new(
                base.url("/health"),
                0,
                format!(
                    "p99 of {samples} requests is {:.2} ms, over the plan's {} ms",
                    p99.as_secs_f64() * 1000.0,
                    limit.as_millis()
                ),
            ),
        ),
        Err(message) => Outcome::fail(
            "the sample failed",
            Finding::new(base.url("/health"), 0, message),
        ),
    }
}

fn performance(env: &Env) -> Outcome {
    match base(env) {
        Ok(base) => performance_outcome(&base, SAMPLES, P99_LIMIT),
        Err(outcome) => outcome,
    }
}

fn runbook_commands(env: &Env) -> Outcome {
    let (count, findings) = runbook::findings(&env.tree);
    Outcome::from_findings(
        format!("{count} commands in docs/runbook.md, each a command of this system"),
        findings,
    )
}

#[cfg(test)]
pub(crate) mod test_server {
    //! A small HTTP server on 127.0.0.1, port 0, in a thread: the shapes
    //! of jido-system's API that the checks read, with switches for a bad
    //! server.

    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// What the server does wrong.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Faults {
        pub(crate) missing_gauge: Option<&'static str>,
        pub(crate) no_thresholds: bool,
        pub(crate) not_evaluated: bool,
        pub(crate) refuse_advance: bool,
        pub(crate) unhealthy: bool,
    }

    /// Starts a server at `phase`; returns its base URL.
    pub(crate) fn start(phase: u64, gauges: Vec<String>, faults: Faults) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("the bound address");
        let phase = Arc::new(Mutex::new(phase));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(stream, &phase, &gauges, &faults);
            }
        });
        format!("http://{address}")
    }

    fn serve(stream: std::net::TcpStream, phase: &Mutex<u64>, gauges: &[String], faults: &Faults) {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut length = 0;
        let mut authorised = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if line.trim_end() == "Authorization: Bearer secret" {
                authorised = true;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut words = request_line.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let path = words.next().unwrap_or_default().to_owned();
        let mut current = phase.lock().expect("the phase lock");
        let (status, answer) = match (method.as_str(), path.as_str()) {
            ("GET", "/health") if faults.unhealthy => (503, "{\"ready\":false}".to_owned()),
            ("GET", "/health") => (200, "{\"ready\":true}".to_owned()),
            ("GET", "/metrics") => (
                200,
                gauges
                    .iter()
                    .filter(|gauge| Some(gauge.as_str()) != faults.missing_gauge)
                    .map(|gauge| format!("# TYPE {gauge} gauge\n{gauge}{{cohort=\"control\"}} 0\n"))
                    .collect::<String>(),
            ),
            ("GET", "/api/v1/alerts") => (200, "[]".to_owned()),
            ("GET", "/api/v1/rollout") => {
                let checks = if faults.no_thresholds {
                    "[]".to_owned()
                } else if faults.not_evaluated {
                    "null".to_owned()
                } else {
                    "[{\"metric\":\"error_rate\",\"threshold\":0.05},{\"metric\":\"restarts\",\"threshold\":10},{\"metric\":\"delivery\",\"threshold\":0.95},{\"metric\":\"recovery\",\"threshold\":0.99}]".to_owned()
                };
                (
                    200,
                    if checks == "null" {
                        format!("{{\"phase\":{current},\"health\":null}}")
                    } else {
                        format!("{{\"phase\":{current},\"health\":{{\"checks\":{checks}}}}}")
                    },
                )
            }
            ("POST", _) if !authorised => (401, "{\"code\":4010}".to_owned()),
            ("POST", "/api/v1/rollout/rollback") if *current > 0 => {
                *current -= 1;
                (200, "{}".to_owned())
            }
            ("POST", "/api/v1/rollout/advance") if faults.refuse_advance => {
                (409, "{\"message\":\"quiet period\"}".to_owned())
            }
            ("POST", "/api/v1/rollout/advance") if *current < 5 => {
                *current += 1;
                (200, "{}".to_owned())
            }
            _ => (404, "{}".to_owned()),
        };
        drop(current);
        let mut stream = reader.into_inner();
        // A test server: a client that went away loses only its answer.
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{Faults, start};
    use super::*;
    use crate::readiness::test_tree::env_at;

    fn real_tree() -> Tree {
        env_at(crate::workspace_root()).tree
    }

    #[test]
    fn the_health_gauges_are_read_from_deploy_monitor() {
        let gauges = health_gauges(&real_tree()).expect("gauges");
        assert!(
            gauges.contains(&"foundation_deploy_phase".to_owned()),
            "{gauges:?}"
        );
        assert!(gauges.contains(&"foundation_deploy_error_rate_ratio".to_owned()));
    }

    #[test]
    fn a_good_server_passes_every_server_check() {
        let tree = real_tree();
        let gauges = health_gauges(&tree).expect("gauges");
        let url = start(2, gauges.clone(), Faults::default());
        let base = BaseUrl::parse(&url).expect("url");
        assert_eq!(monitoring_findings(&tree, &base), (gauges.len(), vec![]));
        assert_eq!(alert_findings(&base), (4, vec![]));
        assert_eq!(
            drill(&base, "secret").expect("the drill"),
            "rollback 2 → 1, advance 1 → 2"
        );
        assert_eq!(current_phase(&base), Ok(2));
        let at_zero = BaseUrl::parse(&start(0, gauges, Faults::default())).expect("url");
        assert_eq!(
            drill(&at_zero, "secret").expect("the drill"),
            "advance 0 → 1, rollback 1 → 0"
        );
        assert!(performance_outcome(&base, 20, Duration::from_secs(5)).passed());
    }

    #[test]
    fn a_bad_server_fails_each_check_with_its_reason() {
        let tree = real_tree();
        let gauges = health_gauges(&tree).expect("gauges");
        let faults = Faults {
            missing_gauge: Some("foundation_deploy_error_rate_ratio"),
            no_thresholds: true,
            not_evaluated: false,
            refuse_advance: true,
            unhealthy: true,
        };
        let base = BaseUrl::parse(&start(2, gauges, faults)).expect("url");
        let (_, findings) = monitoring_findings(&tree, &base);
        assert_eq!(findings.len(), 2, "{findings:#?}");
        assert!(findings[0].message.contains("503"));
        assert!(
            findings[1]
                .message
                .contains("foundation_deploy_error_rate_ratio")
        );
        let (count, findings) = alert_findings(&base);
        assert_eq!((count, findings.len()), (0, 1));
        let fresh = Faults {
            not_evaluated: true,
            ..Faults::default()
        };
        let fresh = BaseUrl::parse(&start(0, Vec::new(), fresh)).expect("url");
        let (_, findings) = alert_findings(&fresh);
        assert!(
            findings[0].message.contains("no health evaluation yet"),
            "{findings:#?}"
        );
        let error = drill(&base, "secret").expect_err("refused");
        assert!(
            error.contains("409") && error.contains("LEFT AT PHASE 1"),
            "{error}"
        );
        let error = drill(&base, "wrong").expect_err("unauthorised");
        assert!(error.contains("401"), "{error}");
        assert!(!performance_outcome(&base, 5, Duration::from_secs(5)).passed());
        // A limit no real request meets: the p99 check fails on latency.
        let good = BaseUrl::parse(&start(1, Vec::new(), Faults::default())).expect("url");
        let outcome = performance_outcome(&good, 5, Duration::ZERO);
        assert!(
            outcome.findings[0].message.contains("over the plan's"),
            "{outcome:?}"
        );
        let nobody = BaseUrl::parse("http://127.0.0.1:9").expect("url");
        assert!(
            monitoring_findings(&tree, &nobody).1[0]
                .message
                .contains("cannot connect")
        );
    }

    #[test]
    fn the_phase_is_read_from_either_shape() {
        assert_eq!(phase_of(&serde_json::json!({"phase": 3})), Some(3));
        assert_eq!(phase_of(&serde_json::json!({"current_phase": 1})), Some(1));
        assert_eq!(
            phase_of(&serde_json::json!({"phase": {"index": 2, "name": "x"}})),
            Some(2)
        );
        assert_eq!(phase_of(&serde_json::json!({"phases": []})), None);
    }

    #[test]
    fn prometheus_names_match_whole() {
        let text = "# TYPE a_b gauge\na_b{x=\"1\"} 2\nc_total 3\n";
        assert!(has_metric(text, "a_b"));
        assert!(has_metric(text, "c_total"));
        assert!(!has_metric(text, "a"));
        assert!(!has_metric(text, "c"));
    }
}
