//! The layering rules, checked on the real dependency graph
//! (`cargo metadata`): the domain depends on no adapter crate, directly or
//! through another crate, the HTTP layer has no database code, no adapter
//! depends on another, and the domain's sources name no provider detail.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates that make a crate an adapter: web frameworks, SQL, HTTP clients,
/// database drivers.
fn is_adapter_crate(name: &str) -> bool {
    name.starts_with("actix")
        || name.starts_with("diesel")
        || name.starts_with("sqlx")
        || name.starts_with("deadpool")
        || name.starts_with("tokio-postgres")
        || name.starts_with("mysql")
        || name.starts_with("mongodb")
        || name.starts_with("redis")
        || name.starts_with("rusqlite")
        || name.starts_with("sea-orm")
        || matches!(
            name,
            "reqwest"
                | "hyper"
                | "r2d2"
                | "pq-sys"
                | "postgres"
                | "libsqlite3-sys"
                | "tiberius"
                | "scylla"
                | "rocket"
                | "axum"
                | "warp"
                | "ureq"
                | "isahc"
                | "surf"
        )
}

struct Graph {
    names: HashMap<String, String>,
    normal_deps: HashMap<String, Vec<String>>,
}

fn metadata() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let names = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id").to_owned(),
                p["name"].as_str().expect("name").to_owned(),
            )
        })
        .collect();
    let mut normal_deps = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("nodes") {
        let deps = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                // Dev-dependencies don't ship; normal and build ones do.
                d["dep_kinds"]
                    .as_array()
                    .expect("kinds")
                    .iter()
                    .any(|k| k["kind"].as_str() != Some("dev"))
            })
            .map(|d| d["pkg"].as_str().expect("pkg").to_owned())
            .collect();
        normal_deps.insert(node["id"].as_str().expect("id").to_owned(), deps);
    }
    Graph { names, normal_deps }
}

impl Graph {
    fn transitive(&self, package: &str) -> BTreeSet<String> {
        let start = self
            .names
            .iter()
            .find(|(_, n)| n.as_str() == package)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("{package} is in the workspace"));
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(id) = stack.pop() {
            for dep in self.normal_deps.get(&id).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        seen.iter().map(|id| self.names[id].clone()).collect()
    }
}

#[test]
fn the_domain_depends_on_no_adapter_crate() {
    let deps = metadata().transitive("maveraa-domain");
    let bad: Vec<&String> = deps
        .iter()
        .filter(|n| is_adapter_crate(n) || n.starts_with("maveraa-"))
        .collect();
    assert!(bad.is_empty(), "maveraa-domain depends on {bad:?}");
    assert!(deps.contains("phonenumber"), "sanity: the graph was read");
}

#[test]
fn the_http_layer_has_no_database_or_provider_code() {
    let deps = metadata().transitive("maveraa-http-api");
    let bad: Vec<&String> = deps
        .iter()
        .filter(|n| {
            n.starts_with("diesel")
                || matches!(
                    n.as_str(),
                    "pq-sys"
                        | "r2d2"
                        | "reqwest"
                        | "maveraa-storage"
                        | "maveraa-whatsapp-transport"
                )
        })
        .collect();
    assert!(bad.is_empty(), "maveraa-http-api depends on {bad:?}");
    assert!(deps.contains("actix-web"), "sanity: the graph was read");
}

#[test]
fn the_checker_catches_a_forbidden_crate() {
    // The storage crate uses diesel: the same walk must see it.
    assert!(
        metadata()
            .transitive("maveraa-storage")
            .iter()
            .any(|n| is_adapter_crate(n))
    );
}

/// The adapter crates: each depends on the domain only, never on another
/// adapter; only the server composes them.
const ADAPTERS: [&str; 5] = [
    "maveraa-storage",
    "maveraa-whatsapp-transport",
    "maveraa-auth",
    "maveraa-http-api",
    "maveraa-webhook-sender",
];

/// The `maveraa-*` crates among `package`'s shipped dependencies.
fn own_crates(graph: &Graph, package: &str) -> BTreeSet<String> {
    graph
        .transitive(package)
        .into_iter()
        .filter(|n| n.starts_with("maveraa-"))
        .collect()
}

#[test]
fn no_adapter_depends_on_another_adapter() {
    let graph = metadata();
    for adapter in ADAPTERS {
        let own = own_crates(&graph, adapter);
        let expected: BTreeSet<String> = ["maveraa-domain".to_owned()].into();
        assert_eq!(own, expected, "{adapter} may depend on maveraa-domain only");
    }
    // Sanity: the walk sees the composition where it is.
    let server = own_crates(&graph, "maveraa-server");
    for adapter in ADAPTERS {
        assert!(server.contains(adapter), "the server composes {adapter}");
    }
}

/// Texts that belong to a provider's protocol or to a transport, not to
/// the domain: Meta's signature header and handshake parameters, its API's
/// host, and our webhook routes.
const PROVIDER_DETAILS: [&str; 4] = ["x-hub", "hub.", "graph.facebook", "/webhooks/"];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The provider details named in the sources under `dir`, with where.
fn provider_details_in(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    assert!(!files.is_empty(), "sanity: {} holds sources", dir.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            for detail in PROVIDER_DETAILS {
                if lower.contains(detail) {
                    found.push(format!("{}:{}: {detail}", file.display(), n + 1));
                }
            }
        }
    }
    found
}

#[test]
fn the_domain_names_no_provider_or_transport_detail() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain");
    for part in ["src", "examples"] {
        let found = provider_details_in(&root.join(part));
        assert!(found.is_empty(), "the domain names {found:#?}");
    }
    // Sanity: the same scan sees them where they belong.
    let transport =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../whatsapp-transport/src");
    assert!(!provider_details_in(&transport).is_empty());
}
