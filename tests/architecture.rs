//! The shape of the code, checked on every test run:
//! - no import circle between the modules of any crate (root, `api`, `raft`);
//! - the root crate's folders are layers, each importing only the ones before it;
//! - every SQL statement the manager sends lives in `src/db/`.
//!
//! The tool is this test: it reads the sources as text (no extra build dependency), finds every
//! `crate::` and `super::` path outside comments and `#[cfg(test)]` modules, resolves it to the
//! module file it names, and searches the module graph for strongly connected components.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The root crate's layers, lowest first. A module may use its own layer and the ones before.
const LAYERS: &[&str] = &["config", "files", "command", "db", "proxy", "cluster", "group", "failover", "actions", "monitor", "node", "main"];

/// One source file: its module path (`failover::executor`) and its code without comments and
/// test modules.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    code: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of `file` under the crate's `src` directory.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().to_string()).collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" if parts.is_empty() && last != "mod.rs" => vec![],
        "mod.rs" => parts,
        other => {
            parts.push(other.trim_end_matches(".rs").to_string());
            parts
        }
    }
}

/// The code of a file with line comments, doc comments and top-level `#[cfg(test)]` items
/// removed.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    let mut pending_test_attr = false;
    for line in text.lines() {
        if skipping {
            if line == "}" {
                skipping = false;
            }
            continue;
        }
        if line.starts_with("#[cfg(test)]") {
            pending_test_attr = true;
            continue;
        }
        if pending_test_attr {
            pending_test_attr = false;
            if line.starts_with("mod ") || line.starts_with("pub mod ") || line.starts_with("pub(crate) mod ") {
                if !line.trim_end().ends_with(';') {
                    skipping = true;
                }
                continue;
            }
            // A single test-only item on one line (a `use`, a `mod x;`): dropped too.
            if line.trim_end().ends_with(';') {
                continue;
            }
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn load_crate(src: &Path) -> Vec<Module> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    assert!(!files.is_empty(), "no Rust file under {}", src.display());
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
            Module { path: module_path(src, &f), code: production_code(&text), file: f }
        })
        .collect()
}

/// Every path named with `crate::` or `super::` in `code`, made absolute from `module`.
fn referenced_paths(module: &[String], is_mod_file: bool, code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(start) {
            let at = from + pos;
            from = at + start.len();
            // Part of a longer identifier (`my_crate::`)?
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let mut base: Vec<String> = if start == "crate::" {
                Vec::new()
            } else {
                // `super` of a `mod.rs` is the parent of its folder's module.
                let mut b = module.to_vec();
                if !is_mod_file || !b.is_empty() {
                    b.pop();
                }
                b
            };
            let rest = &code[from..];
            let mut seg_start = 0;
            let rb = rest.as_bytes();
            let mut i = 0;
            loop {
                while i < rb.len() && (rb[i].is_ascii_alphanumeric() || rb[i] == b'_') {
                    i += 1;
                }
                let seg = &rest[seg_start..i];
                if seg == "super" {
                    base.pop();
                } else if !seg.is_empty() {
                    base.push(seg.to_string());
                }
                if rest[i..].starts_with("::") && rest[i + 2..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    i += 2;
                    seg_start = i;
                    continue;
                }
                if rest[i..].starts_with("::{") {
                    // A group: each first segment inside counts.
                    let close = rest[i..].find('}').map_or(rest.len(), |c| i + c);
                    for item in rest[i + 3..close].split(',') {
                        let name: String =
                            item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
                        let mut p = base.clone();
                        p.extend(name.split("::").filter(|s| !s.is_empty() && *s != "self").map(str::to_string));
                        out.push(p);
                    }
                }
                break;
            }
            out.push(base);
        }
    }
    out
}

/// The module graph: module -> modules it names (the longest existing module prefix of each
/// path). A module's own items and its descendants do not count as edges.
fn graph(modules: &[Module]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let mut g = BTreeMap::new();
    for m in modules {
        let is_mod = m.file.file_name().is_some_and(|n| n == "mod.rs");
        let mut targets = BTreeSet::new();
        for p in referenced_paths(&m.path, is_mod, &m.code) {
            let target = (0..=p.len()).rev().map(|n| p[..n].to_vec()).find(|prefix| known.contains(prefix));
            let Some(t) = target else { continue };
            // A path into the module itself or one of its children, or the crate root: no edge.
            if t.is_empty() || t.starts_with(&m.path) {
                continue;
            }
            targets.insert(t);
        }
        g.insert(m.path.clone(), targets);
    }
    g
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Vec<String>) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let Some((w, _)) = t.g.get_key_value(w) else { continue };
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
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(if w.is_empty() { "crate".to_string() } else { w.join("::") });
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), next: 0, out: Vec::new() };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn layer_of(path: &[String]) -> usize {
    let top = path.first().map_or("main", String::as_str);
    LAYERS.iter().position(|l| *l == top).unwrap_or_else(|| panic!("module {top} is in no layer: add it to LAYERS"))
}

#[test]
fn no_import_circle_in_any_crate() {
    let root = common::repo_root();
    let mut report = Vec::new();
    for src in ["src", "api/src", "raft/src"] {
        let modules = load_crate(&root.join(src));
        for c in circles(&graph(&modules)) {
            report.push(format!("{src}: {}", c.join(" <-> ")));
        }
    }
    assert!(report.is_empty(), "import circles:\n{}", report.join("\n"));
}

#[test]
fn root_crate_layers_point_one_way() {
    let modules = load_crate(&common::repo_root().join("src"));
    assert!(modules.len() > 20, "only {} modules found", modules.len());
    let mut wrong = Vec::new();
    for (from, targets) in graph(&modules) {
        for to in targets {
            if layer_of(&to) > layer_of(&from) {
                wrong.push(format!("{} uses {} (a later layer)", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "layer order {LAYERS:?} broken:\n{}", wrong.join("\n"));
}

/// A string literal that starts like an SQL statement.
fn looks_like_sql(literal: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "SELECT", "SHOW", "SET", "KILL", "FLUSH", "CHANGE", "STOP", "START", "RESET", "OPTIMIZE", "CREATE", "DROP", "INSERT",
        "ALTER", "GRANT", "UPDATE", "DELETE", "UNLOCK", "LOCK", "PURGE", "INSTALL", "ANALYZE", "REPLACE", "TRUNCATE", "USE",
    ];
    let t = literal.trim_start();
    let word: String = t.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
    if !KEYWORDS.contains(&word.as_str()) {
        return false;
    }
    let after = t[word.len()..].chars().nth(1);
    t[word.len()..].starts_with(' ') && after.is_some_and(|c| c.is_ascii_uppercase() || c == '@' || c == '`' || c == '*' || c == '(')
}

/// String literals of `code` (plain and raw), without their quotes.
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                // A char literal ('"', '\'') or a lifetime: skip a char literal only.
                if i + 2 < b.len() && b[i + 2] == b'\'' {
                    i += 3;
                } else if i + 3 < b.len() && b[i + 1] == b'\\' && b[i + 3] == b'\'' {
                    i += 4;
                } else {
                    i += 1;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                out.push(code[start..i.min(b.len())].to_string());
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn sql_lives_in_the_db_module() {
    let src = common::repo_root().join("src");
    let modules = load_crate(&src);
    let mut found = Vec::new();
    for m in modules.iter().filter(|m| m.path.first().map(String::as_str) != Some("db")) {
        for lit in string_literals(&m.code) {
            if looks_like_sql(&lit) {
                found.push(format!("{}: \"{}\"", m.file.display(), lit.chars().take(60).collect::<String>()));
            }
        }
    }
    assert!(found.is_empty(), "SQL outside src/db/ (move it to src/db/sql.rs):\n{}", found.join("\n"));
    // The checker itself finds SQL where it is.
    let db: Vec<&Module> = modules.iter().filter(|m| m.path == ["db", "sql"]).collect();
    assert_eq!(db.len(), 1, "src/db/sql.rs not found");
    let in_db = string_literals(&db[0].code).iter().filter(|l| looks_like_sql(l)).count();
    assert!(in_db > 20, "only {in_db} statements recognised in src/db/sql.rs: the checker is broken");
}

#[test]
fn the_checker_sees_circles_and_sql() {
    let m = |p: &str, code: &str| Module {
        path: p.split("::").map(str::to_string).collect(),
        file: PathBuf::from(format!("{p}.rs")),
        code: production_code(code),
    };
    let modules = vec![
        m("a", "use crate::b::X;\n"),
        m("b", "fn f() { crate::a::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::c::Y;\n}\n"),
        m("c", "// crate::a in a comment\nuse super::b;\n"),
    ];
    let g = graph(&modules);
    assert_eq!(circles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(g[&vec!["c".to_string()]].contains(&vec!["b".to_string()]));
    assert!(!g[&vec!["b".to_string()]].contains(&vec!["c".to_string()]), "test module counted");
    assert!(looks_like_sql("SELECT @@read_only"));
    assert!(looks_like_sql("SET GLOBAL read_only = 1"));
    assert!(!looks_like_sql("Server Not Found"));
    assert!(!looks_like_sql("STOP the world"));
    assert_eq!(string_literals(r#"let a = "x\"y"; let c = '"'; let d = "z";"#), vec![r#"x\"y"#.to_string(), "z".to_string()]);
}
