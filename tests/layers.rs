//! The library's root modules form no dependency cycle (issue #28 found four: config ↔ model,
//! model ↔ onnx, checkpoint ↔ infer, kinds ↔ runtime). Read from the sources: every
//! `crate::NAME` outside comments and outside `#[cfg(test)]` code is an edge from the file's
//! root module to NAME. docs/architecture.md's table is the drawing of this graph.

mod common;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Root module → the root modules its non-test code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = common::repo().join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let root_of = |p: &Path| -> String {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = root_of(f);
        // The binary's side (main.rs and its `cli/`) and the crate root are not layers.
        if ["main", "lib", "cli"].contains(&m.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let code = without_test_items(&text);
        let deps = g.entry(m.clone()).or_default();
        for line in code.lines() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                // `crate::name` or `crate::{a, b::c}`
                let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                    group
                        .split('}')
                        .next()
                        .unwrap()
                        .split(',')
                        .map(|s| s.trim().split("::").next().unwrap())
                        .collect()
                } else {
                    vec![
                        rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()
                            .unwrap(),
                    ]
                };
                for n in names {
                    if !n.is_empty() && n != m {
                        deps.insert(n.to_string());
                    }
                }
            }
        }
    }
    let known: BTreeSet<String> = g.keys().cloned().collect();
    for d in g.values_mut() {
        d.retain(|n| known.contains(n));
    }
    g
}

/// `text` without the items that follow `#[cfg(test)]` (each up to its matching brace, or its
/// `;`), wherever they sit in the file.
fn without_test_items(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let item = &rest[i..];
        let (Some(open), semi) = (item.find('{'), item.find(';')) else {
            return out;
        };
        if semi.is_some_and(|s| s < open) {
            rest = &item[semi.unwrap() + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = item.len();
        for (j, c) in item[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn root_modules_have_no_dependency_cycle() {
    let g = graph();
    assert!(g.len() > 15, "{:?}", g.keys());
    for (m, d) in &g {
        println!("{m} -> {d:?}");
    }
    // Depth-first search for a back edge; the path to it is the cycle.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in &g[m] {
            if let Some(c) = visit(d, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        if let Some(c) = visit(m, &g, &mut Vec::new(), &mut done) {
            panic!("dependency cycle: {}", c.join(" -> "));
        }
    }
}
