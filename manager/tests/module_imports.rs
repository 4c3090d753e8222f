//! Issue 12: no two modules of the manager import each other. A module is a file directly
//! under `manager/src/` (with its children in the folder of the same name: `market/*.rs` are
//! part of `market`); it imports another when its code (comments aside) names a
//! `crate::other` path, in a `use` line or inline. A circle of two is a layering fault: each
//! half can only be understood, tested or changed with the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`None` for the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib").then_some(name)
}

/// The modules a line of code names as `crate::name`.
fn named(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `compushare_crate::` or `some_crate::` are not this crate.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// Which top-level module names which, with the first place each is named.
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "found only {} sources", files.len());
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("//") {
                continue;
            }
            for other in named(line) {
                if other != module {
                    let at = format!("{}:{}", file.display(), n + 1);
                    graph
                        .entry(module.clone())
                        .or_default()
                        .entry(other)
                        .or_insert(at);
                }
            }
        }
    }
    graph
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = imports();
    // The scan sees what it must: the market names the journal, the journal the store.
    assert!(graph["market"].contains_key("journal"), "{graph:?}");
    assert!(graph["journal"].contains_key("store"), "{graph:?}");
    let mut circles = BTreeSet::new();
    for (a, named) in &graph {
        for (b, at) in named {
            if let Some(back) = graph.get(b).and_then(|m| m.get(a)).filter(|_| a < b) {
                circles.insert(format!("{a} <-> {b} ({at}; {back})"));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other:\n{}",
        circles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_scan_reads_paths_not_comments() {
    assert_eq!(named("use crate::store::{Store, WriteTx};"), vec!["store"]);
    assert_eq!(
        named("let x = crate::ledger::verify(&t); // see crate::trust"),
        vec!["ledger"]
    );
    assert!(named("use compushare_kernels::transport;").is_empty());
    assert!(named("use some_crate::thing;").is_empty());
}
