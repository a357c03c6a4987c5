//! Every dependency's licence is one we can ship under (issue #29: release hygiene), read from
//! `cargo metadata` (the Cargo.lock graphs of the root workspace and of python/, for this
//! platform; no network once the crates are downloaded, which building them did). Each package's SPDX expression must
//! be satisfiable with the allowed licences (`OR`: one of them, `AND`: all, `WITH` an
//! exception: the licence itself); `/` is read as `OR` (older crates write `MIT/Apache-2.0`).
//! Advisories need the RustSec database: `./dev lint` runs `cargo audit` where it is installed.

mod common;
use common::*;
use std::collections::BTreeMap;

/// Permissive licences (and public-domain dedications) compatible with distributing yt8m
/// under Apache-2.0.
const ALLOWED: &[&str] = &[
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "0BSD",
    "ISC",
    "Zlib",
    "BSL-1.0",
    "Unlicense",
    "CC0-1.0",
    "Unicode-3.0",
    "Unicode-DFS-2016",
];

#[derive(Debug)]
enum Expr {
    Id(String),
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
}

/// Tokens of an SPDX expression: identifiers, `(`, `)`; `/` becomes `OR`.
fn tokens(s: &str) -> Vec<String> {
    s.replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `or := and ("OR" and)*; and := atom ("AND" atom)*; atom := "(" or ")" | id ("WITH" id)?`,
/// with a depth bound.
fn parse(t: &[String], i: &mut usize, depth: usize) -> Result<Expr, String> {
    if depth > 16 {
        return Err("nested too deeply".into());
    }
    let mut left = parse_and(t, i, depth)?;
    while t.get(*i).is_some_and(|x| x == "OR") {
        *i += 1;
        left = Expr::Or(Box::new(left), Box::new(parse_and(t, i, depth)?));
    }
    Ok(left)
}

fn parse_and(t: &[String], i: &mut usize, depth: usize) -> Result<Expr, String> {
    let mut left = parse_atom(t, i, depth)?;
    while t.get(*i).is_some_and(|x| x == "AND") {
        *i += 1;
        left = Expr::And(Box::new(left), Box::new(parse_atom(t, i, depth)?));
    }
    Ok(left)
}

fn parse_atom(t: &[String], i: &mut usize, depth: usize) -> Result<Expr, String> {
    match t.get(*i).map(String::as_str) {
        Some("(") => {
            *i += 1;
            let e = parse(t, i, depth + 1)?;
            if t.get(*i).map(String::as_str) != Some(")") {
                return Err("unbalanced parentheses".into());
            }
            *i += 1;
            Ok(e)
        }
        Some(id) if !["OR", "AND", "WITH", ")"].contains(&id) => {
            *i += 1;
            // An exception (LLVM-exception, ...) only adds permissions.
            if t.get(*i).is_some_and(|x| x == "WITH") {
                *i += 2;
            }
            Ok(Expr::Id(id.to_string()))
        }
        other => Err(format!("unexpected {other:?}")),
    }
}

fn allowed(e: &Expr) -> bool {
    match e {
        Expr::Id(id) => ALLOWED.contains(&id.as_str()),
        Expr::Or(a, b) => allowed(a) || allowed(b),
        Expr::And(a, b) => allowed(a) && allowed(b),
    }
}

/// `(name version, licence expression or None)` of every package in the resolved graph of
/// `manifest` for this platform.
fn packages(manifest: &std::path::Path) -> Vec<(String, Option<String>)> {
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &triple, "--manifest-path"])
        .arg(manifest)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cargo metadata failed for {}: {}",
        manifest.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: std::collections::HashSet<&str> = m["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ids.contains(p["id"].as_str().unwrap()))
        .map(|p| {
            (
                format!(
                    "{} {}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                ),
                p["license"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn every_dependency_has_a_licence_we_can_ship_under() {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut n = 0;
    for manifest in ["Cargo.toml", "python/Cargo.toml"] {
        for (pkg, lic) in packages(&repo().join(manifest)) {
            n += 1;
            let Some(lic) = lic else {
                bad.push(format!("{pkg} ({manifest}): no SPDX licence field"));
                continue;
            };
            let t = tokens(&lic);
            let mut i = 0;
            match parse(&t, &mut i, 0) {
                Ok(e) if i == t.len() && allowed(&e) => {
                    *counts.entry(lic).or_insert(0) += 1;
                }
                Ok(_) if i == t.len() => bad.push(format!("{pkg} ({manifest}): {lic}")),
                Ok(_) => bad.push(format!("{pkg} ({manifest}): '{lic}' has trailing tokens")),
                Err(e) => bad.push(format!("{pkg} ({manifest}): '{lic}': {e}")),
            }
        }
    }
    for (lic, c) in &counts {
        println!("{c:>4}  {lic}");
    }
    println!("{n} packages, {} not allowed", bad.len());
    assert!(n > 100, "only {n} packages: is the graph complete?");
    assert!(
        bad.is_empty(),
        "licences outside the allowed set {ALLOWED:?}:\n{}",
        bad.join("\n")
    );
}

#[test]
fn licence_expressions_are_read_as_spdx_says() {
    let ok = |s: &str| {
        let t = tokens(s);
        let mut i = 0;
        parse(&t, &mut i, 0).is_ok_and(|e| i == t.len() && allowed(&e))
    };
    assert!(ok("MIT OR Apache-2.0"));
    assert!(ok("MIT/Apache-2.0"));
    assert!(ok("(MIT OR Apache-2.0) AND Unicode-3.0"));
    assert!(ok("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"));
    assert!(!ok("GPL-3.0-only"));
    assert!(!ok("MIT AND GPL-3.0-only"));
    assert!(ok("MIT OR GPL-3.0-only"));
    assert!(!ok("(MIT OR Apache-2.0"));
    assert!(!ok("MIT Apache-2.0"));
}
