//! The gateway's shape, checked on its source: small files, and features that do not import
//! each other in circles (only `routes` and `state` may close a circle, as the places that name
//! every handler and hold every feature's state).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const LONGEST_FILE: usize = 500;
/// Modules that may close a circle.
const HUBS: [&str; 3] = ["lib", "routes", "state"];

/// Every `.rs` file under `src`, by module path (`sign_in::flow`; `lib` for the crate root).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(SRC).expect("under src").with_extension("");
            let name = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect::<Vec<_>>().join("::");
            (name, file)
        })
        .collect()
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` gives `a::b`, `a::c::d`, `a::c::e`.
fn use_paths(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').expect("balanced braces")];
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).flat_map(|p| use_paths(&format!("{prefix}{p}"))).collect()
}

/// The modules of the crate that `module`'s source names, through `use` or in place.
fn imports(module: &str, source: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let own: Vec<&str> = if module == "lib" { vec![] } else { module.split("::").collect() };
    let code: String = source.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut paths = Vec::new();
    for statement in code.split(';') {
        if let Some(tree) =
            statement.trim_start().strip_prefix("pub ").unwrap_or(statement.trim_start()).strip_prefix("use ")
        {
            paths.extend(use_paths(tree));
        }
    }
    // Paths written in place, such as `crate::personal::email(..)`.
    for start in code.match_indices("crate::").map(|(i, _)| i).chain(code.match_indices("super::").map(|(i, _)| i)) {
        let path: String =
            code[start..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        paths.push(path);
    }
    let mut found = BTreeSet::new();
    for path in paths {
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let absolute: Vec<String> = match segments.first() {
            Some(&"crate") => segments.drain(1..).map(str::to_string).collect(),
            Some(&"super") => {
                let mut base: Vec<String> = own.iter().map(|s| s.to_string()).collect();
                base.pop();
                base.extend(segments.drain(1..).map(str::to_string));
                base
            }
            _ => continue,
        };
        // The longest prefix that is a module of the crate.
        let target = (1..=absolute.len())
            .rev()
            .map(|n| absolute[..n].join("::"))
            .find(|candidate| known.contains_key(candidate));
        if let Some(target) = target.filter(|t| t != module) {
            found.insert(target);
        }
    }
    found
}

#[test]
fn no_source_file_of_the_gateway_is_over_five_hundred_lines() {
    for (module, file) in modules() {
        let lines = std::fs::read_to_string(&file).expect("readable").lines().count();
        assert!(lines <= LONGEST_FILE, "{module} ({}) has {lines} lines", file.display());
    }
}

#[test]
fn no_modules_import_each_other_in_a_circle_except_through_routes_and_state() {
    let known = modules();
    let graph: BTreeMap<String, BTreeSet<String>> = known
        .iter()
        .filter(|(module, _)| !HUBS.contains(&module.as_str()))
        .map(|(module, file)| {
            let source = std::fs::read_to_string(file).expect("readable");
            let edges = imports(module, &source, &known).into_iter().filter(|t| !HUBS.contains(&t.as_str())).collect();
            (module.clone(), edges)
        })
        .collect();
    // Sanity: the parser sees the imports that are there.
    assert!(graph["sign_in::api"].contains("sign_in::flow"), "{:?}", graph["sign_in::api"]);
    assert!(graph["admin::pages"].contains("http::layout"), "{:?}", graph["admin::pages"]);
    for start in graph.keys() {
        // Depth-first from `start`, looking for a way back to it.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((module, path)) = stack.pop() {
            for next in &graph[&module] {
                if next == start {
                    panic!("an import circle: {} -> {start}", path.join(" -> "));
                }
                if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
}
