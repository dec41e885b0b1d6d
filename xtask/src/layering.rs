//! `cargo xtask layering`: the architecture's layer rule, checked.
//!
//! Every workspace crate has a layer. A crate may depend (normally, for
//! builds, or for tests) only on workspace crates of a strictly lower layer,
//! so that a user can take one crate without the ones above it. `xtask` and
//! `benches` stand outside the layers: they may depend on anything, and
//! nothing may depend on them. A workspace crate missing from the table is
//! an error too, so that a new crate must be placed deliberately.

use std::collections::BTreeMap;
use std::fmt;
use std::process::ExitCode;

/// Where each crate sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A product crate of this layer.
    Layer(u8),
    /// A tool that may depend on anything and that nothing depends on.
    Outside,
}

/// The layer table of ARCHITECTURE.md.
pub(crate) const LAYERS: &[(&str, Place)] = &[
    ("foundation-error", Place::Layer(0)),
    ("foundation-core", Place::Layer(1)),
    ("foundation-flags", Place::Layer(1)),
    ("foundation-persist", Place::Layer(1)),
    ("foundation-persist-postgres", Place::Layer(2)),
    ("jido-agents", Place::Layer(2)),
    ("deploy-monitor", Place::Layer(2)),
    ("jido-workflow", Place::Layer(3)),
    ("jido-system", Place::Layer(4)),
    ("xtask", Place::Outside),
    ("benches", Place::Outside),
];

/// A workspace crate and the workspace crates it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Crate {
    pub(crate) name: String,
    pub(crate) dependencies: Vec<String>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A workspace crate that the table does not place.
    Unplaced { name: String },
    /// A dependency on a crate of the same layer or above.
    UpwardEdge {
        from: String,
        from_layer: u8,
        to: String,
        to_layer: u8,
    },
    /// A dependency on a tool crate.
    OnTool { from: String, to: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Unplaced { name } => write!(
                f,
                "crate `{name}` has no layer: add it to LAYERS in xtask/src/layering.rs and to ARCHITECTURE.md"
            ),
            Violation::UpwardEdge {
                from,
                from_layer,
                to,
                to_layer,
            } => write!(
                f,
                "`{from}` (layer {from_layer}) depends on `{to}` (layer {to_layer}); a crate may only depend on strictly lower layers"
            ),
            Violation::OnTool { from, to } => {
                write!(
                    f,
                    "`{from}` depends on `{to}`, which stands outside the layers"
                )
            }
        }
    }
}

/// Checks a dependency graph of workspace crates against `layers`.
pub(crate) fn check(crates: &[Crate], layers: &[(&str, Place)]) -> Vec<Violation> {
    let places: BTreeMap<&str, Place> = layers.iter().copied().collect();
    let mut violations = Vec::new();
    for krate in crates {
        let Some(&from_place) = places.get(krate.name.as_str()) else {
            violations.push(Violation::Unplaced {
                name: krate.name.clone(),
            });
            continue;
        };
        for dependency in &krate.dependencies {
            let Some(&to_place) = places.get(dependency.as_str()) else {
                // Reported once, as the dependency's own entry.
                continue;
            };
            match (from_place, to_place) {
                (_, Place::Outside) => violations.push(Violation::OnTool {
                    from: krate.name.clone(),
                    to: dependency.clone(),
                }),
                (Place::Layer(from_layer), Place::Layer(to_layer)) if to_layer >= from_layer => {
                    violations.push(Violation::UpwardEdge {
                        from: krate.name.clone(),
                        from_layer,
                        to: dependency.clone(),
                        to_layer,
                    })
                }
                _ => {}
            }
        }
    }
    violations
}

/// Reads the workspace graph from `cargo metadata`.
fn workspace_graph() -> Result<Vec<Crate>, cargo_metadata::Error> {
    let metadata = cargo_metadata::MetadataCommand::new().no_deps().exec()?;
    let members: Vec<_> = metadata.workspace_packages();
    let names: Vec<String> = members
        .iter()
        .map(|package| package.name.to_string())
        .collect();
    Ok(members
        .iter()
        .map(|package| {
            let mut dependencies: Vec<String> = package
                .dependencies
                .iter()
                .filter(|dependency| names.contains(&dependency.name))
                .map(|dependency| dependency.name.clone())
                .collect();
            dependencies.sort();
            dependencies.dedup();
            Crate {
                name: package.name.to_string(),
                dependencies,
            }
        })
        .collect())
}

pub(crate) fn run() -> ExitCode {
    let graph = match workspace_graph() {
        Ok(graph) => graph,
        Err(error) => {
            eprintln!("layering: cannot read `cargo metadata`: {error}");
            return ExitCode::FAILURE;
        }
    };
    let violations = check(&graph, LAYERS);
    if violations.is_empty() {
        eprintln!("layering: {} crates, all edges point down", graph.len());
        ExitCode::SUCCESS
    } else {
        for violation in &violations {
            eprintln!("layering: {violation}");
        }
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(name: &str, dependencies: &[&str]) -> Crate {
        Crate {
            name: name.to_owned(),
            dependencies: dependencies.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    #[test]
    fn a_clean_graph_passes() {
        let graph = [
            krate("foundation-error", &[]),
            krate("foundation-core", &["foundation-error"]),
            krate("jido-agents", &["foundation-core", "foundation-error"]),
            krate("jido-system", &["jido-agents", "foundation-core"]),
            krate("benches", &["foundation-core", "jido-system"]),
            krate("xtask", &[]),
        ];
        assert_eq!(check(&graph, LAYERS), vec![]);
    }

    #[test]
    fn an_upward_edge_is_named() {
        let graph = [
            krate("foundation-error", &["foundation-core"]),
            krate("foundation-core", &["foundation-error"]),
        ];
        let violations = check(&graph, LAYERS);
        assert_eq!(
            violations,
            vec![Violation::UpwardEdge {
                from: "foundation-error".into(),
                from_layer: 0,
                to: "foundation-core".into(),
                to_layer: 1,
            }]
        );
        assert_eq!(
            violations[0].to_string(),
            "`foundation-error` (layer 0) depends on `foundation-core` (layer 1); a crate may only depend on strictly lower layers"
        );
    }

    #[test]
    fn a_same_layer_edge_is_rejected() {
        let graph = [krate("foundation-flags", &["foundation-persist"])];
        assert!(matches!(
            check(&graph, LAYERS).as_slice(),
            [Violation::UpwardEdge {
                from_layer: 1,
                to_layer: 1,
                ..
            }]
        ));
    }

    #[test]
    fn a_missing_crate_is_rejected() {
        let graph = [
            krate("foundation-error", &[]),
            krate("mystery", &["foundation-error"]),
        ];
        assert_eq!(
            check(&graph, LAYERS),
            vec![Violation::Unplaced {
                name: "mystery".into()
            }]
        );
    }

    #[test]
    fn depending_on_a_tool_is_rejected() {
        let graph = [krate("jido-system", &["benches"])];
        assert_eq!(
            check(&graph, LAYERS),
            vec![Violation::OnTool {
                from: "jido-system".into(),
                to: "benches".into()
            }]
        );
    }

    #[test]
    fn the_real_workspace_passes() {
        let graph = workspace_graph().expect("cargo metadata runs in the workspace");
        assert!(graph.iter().any(|krate| krate.name == "foundation-error"));
        assert_eq!(check(&graph, LAYERS), vec![]);
    }
}
