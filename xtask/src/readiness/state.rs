//! State management: the critical agents are persistent agents (by their
//! types: each implements jido-agents' `PersistentAgent`), and the state
//! recovery and no-data-loss suites pass (run).
//!
//! This module is not for what persistence means; jido-agents' tests hold
//! that, and the suites named here run them.

use super::run::{self, Suite};
use super::{Category, CheckDef, Env, Finding, Kind, Outcome, Tree};

pub(crate) fn checks() -> Vec<CheckDef> {
    let check = |name, kind, run| CheckDef {
        category: Category::StateManagement,
        name,
        kind,
        run,
    };
    vec![
        check(
            "Critical agents use persistence",
            Kind::Static,
            persistent_agents,
        ),
        check("State recovery tested", Kind::Build, state_recovery),
        check("No data loss on crash", Kind::Build, no_data_loss),
    ]
}

/// The plan's critical agents: (type, the crate folder it lives in).
pub(crate) const CRITICAL_AGENTS: &[(&str, &str)] = &[
    ("TaskAgent", "jido-agents"),
    ("CoordinatorV2", "jido-workflow"),
    ("MonitorAgent", "jido-agents"),
];

/// The trait, and the crate that declares it.
const PERSISTENT_TRAIT: (&str, &str) = ("PersistentAgent", "jido-agents");

fn last_ident(path: &syn::Path) -> Option<String> {
    path.segments
        .last()
        .map(|segment| segment.ident.to_string())
}

/// The findings of the persistence check on `tree`.
pub(crate) fn persistence_findings(tree: &Tree) -> Vec<Finding> {
    let (trait_name, trait_crate) = PERSISTENT_TRAIT;
    let mut declared = false;
    let mut implemented: Vec<String> = Vec::new();
    let mut declarations: Vec<(String, String, usize)> = Vec::new();
    for file in tree.product_files() {
        for item in &file.syntax.items {
            match item {
                syn::Item::Trait(declaration)
                    if declaration.ident == trait_name && file.crate_folder() == trait_crate =>
                {
                    declared = true;
                }
                syn::Item::Impl(block) => {
                    let Some((_, path, _)) = &block.trait_ else {
                        continue;
                    };
                    if last_ident(path).as_deref() != Some(trait_name) {
                        continue;
                    }
                    if let syn::Type::Path(ty) = &*block.self_ty
                        && let Some(name) = last_ident(&ty.path)
                    {
                        implemented.push(name);
                    }
                }
                syn::Item::Struct(declaration) => declarations.push((
                    declaration.ident.to_string(),
                    file.path.clone(),
                    crate::source::line(declaration.ident.span()),
                )),
                _ => {}
            }
        }
    }
    let mut findings = Vec::new();
    if !declared {
        findings.push(Finding::new(
            format!("{trait_crate}/src"),
            0,
            format!("trait `{trait_name}` is not declared in {trait_crate}"),
        ));
    }
    for (agent, folder) in CRITICAL_AGENTS {
        if implemented.iter().any(|name| name == agent) {
            continue;
        }
        let place = declarations
            .iter()
            .find(|(name, path, _)| name == agent && path.starts_with(&format!("{folder}/")));
        findings.push(match place {
            Some((_, path, line)) => Finding::new(
                path.clone(),
                *line,
                format!(
                    "`{agent}` does not implement `{trait_name}`: its state is not saved before it acknowledges, so a crash loses it"
                ),
            ),
            None => Finding::new(
                format!("{folder}/src"),
                0,
                format!("the critical agent `{agent}` is not declared in {folder}"),
            ),
        });
    }
    findings
}

fn persistent_agents(env: &Env) -> Outcome {
    let names: Vec<&str> = CRITICAL_AGENTS.iter().map(|(name, _)| *name).collect();
    Outcome::from_findings(
        format!("{} implement PersistentAgent", names.join(", ")),
        persistence_findings(&env.tree),
    )
}

/// State recovery: persisted agents and the rollout record come back after
/// restarts and after a SIGKILL of a real process.
pub(crate) const RECOVERY_SUITES: &[Suite] = &[
    Suite {
        package: "jido-agents",
        module: "persistent",
        function: None,
    },
    Suite {
        package: "jido-agents",
        module: "task_agent",
        function: Some("a_killed_agent_restarts_with_its_queue_and_counters"),
    },
    Suite {
        package: "jido-agents",
        module: "sigkill",
        function: None,
    },
    Suite {
        package: "deploy-monitor",
        module: "persistence",
        function: None,
    },
];

/// No data loss: recorded steps and acknowledged tasks survive kills of
/// actors and of the OS process, and rollout flags match the phase after a
/// kill mid-transition.
pub(crate) const NO_DATA_LOSS_SUITES: &[Suite] = &[
    Suite {
        package: "jido-workflow",
        module: "real_process",
        function: Some("sigkilled_processes_lose_no_recorded_step"),
    },
    Suite {
        package: "jido-workflow",
        module: "chaos",
        function: Some("a_hundred_workflows_survive_twenty_random_kills"),
    },
    Suite {
        package: "jido-agents",
        module: "task_agent",
        function: Some("a_task_in_progress_at_a_crash_runs_again_with_its_key_and_counts_once"),
    },
    Suite {
        package: "deploy-monitor",
        module: "kill",
        function: None,
    },
];

fn state_recovery(env: &Env) -> Outcome {
    run::run_suites(env, "state recovery", RECOVERY_SUITES)
}

fn no_data_loss(env: &Env) -> Outcome {
    run::run_suites(env, "no data loss", NO_DATA_LOSS_SUITES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::test_tree::{env_at, fixture};

    const AGENTS: &str = "//! Agents.\npub trait PersistentAgent {}\npub struct TaskAgent<H> { h: H }\nimpl<H: Handler> PersistentAgent for TaskAgent<H> {}\npub struct MonitorAgent;\nimpl jido_agents::PersistentAgent for MonitorAgent {}\n";

    #[test]
    fn agents_implementing_the_trait_pass() {
        let (_d, good) = fixture(&[
            ("jido-agents/src/lib.rs", AGENTS),
            (
                "jido-workflow/src/v2.rs",
                "//! V2.\npub struct CoordinatorV2;\nimpl PersistentAgent for CoordinatorV2 {}\n",
            ),
        ]);
        assert_eq!(persistence_findings(&good.tree), vec![]);
    }

    #[test]
    fn a_plain_actor_fails_at_its_declaration() {
        let (_d, bad) = fixture(&[
            ("jido-agents/src/lib.rs", AGENTS),
            (
                "jido-workflow/src/v2.rs",
                "//! V2.\n\npub struct CoordinatorV2;\nimpl Actor for CoordinatorV2 {}\n#[cfg(test)]\nmod tests { impl PersistentAgent for CoordinatorV2 {} }\n",
            ),
        ]);
        let findings = persistence_findings(&bad.tree);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(
            (findings[0].path.as_str(), findings[0].line),
            ("jido-workflow/src/v2.rs", 3)
        );
        let (_d, empty) = fixture(&[("other/src/lib.rs", "//! Nothing.\n")]);
        assert_eq!(persistence_findings(&empty.tree).len(), 4);
    }

    #[test]
    fn the_named_suites_exist_in_the_workspace() {
        let env = env_at(crate::workspace_root());
        for suite in RECOVERY_SUITES.iter().chain(NO_DATA_LOSS_SUITES) {
            assert!(suite.missing(&env.tree).is_none(), "{suite:?}");
        }
    }
}
