//! No module imports another that imports it back, directly or through others.
//!
//! Every library crate's source files are read; each file is a module, and a reference to
//! `crate::a::b...`, `super::...` or `self::...` (in a `use` or anywhere in the code) is
//! an edge to the module that path names (its longest prefix that is a file). A cycle is a
//! strongly connected set of more than one module. A `mod.rs` counts as its own module:
//! a child that needs something from it imports its parent, so the parent may not import
//! the child (it declares it, and re-exports are fine: `pub use` and `mod` lines are not
//! edges).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 5] = [
    "broker",
    "plugin-client",
    "kernel",
    "kernel/cli",
    "plugins/example",
];

/// Module path (`a::b`) of a source file relative to `src/`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Parses a path tree after `crate::`/`super::`/`self::`: `a::b::C`, `a::{b, c::D}`,
/// across lines. Returns the paths and how many bytes were read.
fn tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut prefix: Vec<String> = Vec::new();
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i > start {
            prefix.push(s[start..i].to_string());
        }
        let group = if s[i..].starts_with("::{") {
            Some(3)
        } else if s[i..].starts_with('{') {
            Some(1)
        } else {
            None
        };
        if let Some(skip) = group {
            i += skip;
            let mut out = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return (out, i + 1);
                }
                let (sub, used) = tree(&s[i..]);
                for p in sub {
                    let mut full = prefix.clone();
                    full.extend(p.into_iter().filter(|x| x != "self"));
                    out.push(full);
                }
                i += used.max(1);
            }
        }
        if s[i..].starts_with("::") {
            i += 2;
            continue;
        }
        return (vec![prefix], i);
    }
}

/// Paths like `crate::a::b` / `super::x` / `self::y` in code (not in `pub use` or `mod`
/// lines, nor comments), resolved to absolute module paths.
fn references(module: &str, code: &str) -> Vec<Vec<String>> {
    let here: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let code: String = code
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("//")
                || l.starts_with("pub use")
                || l.starts_with("pub(crate) use")
                || l.starts_with("pub(super) use")
                || l.starts_with("mod ")
                || l.starts_with("pub mod ")
                || l.starts_with("pub(crate) mod "))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let tail = &code[i..];
        let boundary =
            i == 0 || !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
        let (base, skip) = if boundary && tail.starts_with("crate::") {
            (Some(Vec::new()), 7)
        } else if boundary && tail.starts_with("super::") {
            let mut base = here.clone();
            let mut skip = 0;
            let mut ok = true;
            while tail[skip..].starts_with("super::") {
                ok &= base.pop().is_some();
                skip += 7;
            }
            (ok.then_some(base), skip)
        } else if boundary && tail.starts_with("self::") {
            (Some(here.clone()), 6)
        } else {
            i += tail.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let (paths, used) = tree(&tail[skip..]);
        if let Some(base) = base {
            for p in paths {
                let mut full = base.clone();
                full.extend(p);
                out.push(full);
            }
        }
        i += skip + used.max(1);
    }
    out
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn crate_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut paths = Vec::new();
    files(src, &mut paths);
    let mut sources = BTreeMap::new();
    for p in &paths {
        let rel = p.strip_prefix(src).unwrap();
        sources.insert(module_of(rel), std::fs::read_to_string(p).unwrap());
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &sources {
        // Unit tests (`#[cfg(test)] mod tests`) may use anything.
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        let edges = graph.entry(module.clone()).or_default();
        for path in references(module, code) {
            // The longest prefix of the path that is a module.
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| modules.contains(m));
            if let Some(t) = target {
                if &t != module && !t.is_empty() {
                    edges.insert(t);
                }
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for c in CRATES {
        for cycle in cycles(&crate_graph(&root.join(c).join("src"))) {
            found.push(format!("{c}: {}", cycle.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    g.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    let refs = references(
        "conn::inbound",
        "use super::session::Conn;\nuse crate::{state::X, wire::{a::B, c}};\nlet x = crate::m::f();",
    );
    let expected: Vec<Vec<&str>> = vec![
        vec!["conn", "session", "Conn"],
        vec!["state", "X"],
        vec!["wire", "a", "B"],
        vec!["wire", "c"],
        vec!["m", "f"],
    ];
    assert_eq!(refs, expected);
}
