//! A config's YAML as text and as a value tree, before and after serde: the bounds checked
//! before the parser sees the text (nesting depth, duplicate keys, size), `-o` overrides,
//! and the pruning and one-line rendering of saved configs.

use crate::error::Result;
use serde_yaml_ng::Value;
use std::path::Path;

/// Deepest YAML nesting a config may use (PaddleVideo's use 4 levels).
const MAX_YAML_DEPTH: usize = 64;

/// Bounds YAML nesting before the parser sees the text: its time grew quadratically with the
/// depth of flow collections (10k `[` 1.6 s, 100k > 30 s). Counts `[`/`{` outside quotes and
/// comments, and block indentation (a depth of d needs ≥ d columns). Err names the line.
pub(super) fn check_yaml_nesting(text: &str) -> std::result::Result<(), String> {
    let mut depth = 0usize;
    // Open quote, carried across lines: YAML's quoted scalars may span lines.
    let mut quote: Option<char> = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if quote.is_none() && indent > 2 * MAX_YAML_DEPTH + 64 {
            return Err(format!(
                "line {}: indented {indent} columns: nested deeper than a config may be ({MAX_YAML_DEPTH} levels)\n  hint: a config nests a few levels (MODEL: head: name: ...)",
                i + 1
            ));
        }
        let mut prev = ' ';
        for c in line.chars() {
            match quote {
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '#' if prev.is_whitespace() => break,
                    '"' | '\'' if depth > 0 || prev.is_whitespace() || prev == ':' => {
                        quote = Some(c)
                    }
                    '[' | '{' => {
                        depth += 1;
                        if depth > MAX_YAML_DEPTH {
                            return Err(format!(
                                "line {}: brackets nested deeper than {MAX_YAML_DEPTH} levels\n  hint: a config nests a few levels; check for a runaway '[' or '{{'",
                                i + 1
                            ));
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
    }
    Ok(())
}

/// The first key given twice in one block mapping: its dotted path and both 1-based lines.
/// (serde reports a duplicate with the line of the enclosing mapping, or none at top level.)
/// Block style only, as config files are written; flow mappings are left to the parser.
pub(super) fn duplicate_key(text: &str) -> Option<(String, usize, usize)> {
    // (indent, keys of this mapping with their line, key that opened it)
    let mut stack: Vec<(usize, std::collections::HashMap<String, usize>, String)> =
        vec![(0, Default::default(), String::new())];
    let mut last_key = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = match raw.find(" #") {
            Some(c) => &raw[..c],
            None => raw,
        };
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let mut indent = line.len() - trimmed.len();
        let mut content = trimmed;
        if let Some(rest) = content.strip_prefix("- ") {
            // A list item starts a fresh mapping.
            while stack.len() > 1 && stack.last().unwrap().0 >= indent + 2 {
                stack.pop();
            }
            stack.push((indent + 2, Default::default(), last_key.clone()));
            indent += 2;
            content = rest.trim_start();
        }
        let Some(colon) = content.find(':') else {
            continue;
        };
        let after = &content[colon + 1..];
        if !(after.is_empty() || after.starts_with(' ')) {
            continue;
        }
        let key = content[..colon]
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        if key.is_empty() || key.contains(['{', '[', ' ']) {
            continue;
        }
        while stack.len() > 1 && stack.last().unwrap().0 > indent {
            stack.pop();
        }
        if stack.last().unwrap().0 < indent {
            let parent = last_key.clone();
            stack.push((indent, Default::default(), parent));
        }
        let path: Vec<&str> = stack
            .iter()
            .map(|s| s.2.as_str())
            .filter(|k| !k.is_empty())
            .collect();
        let full = if path.is_empty() {
            key.clone()
        } else {
            format!("{}.{key}", path.join("."))
        };
        let top = stack.last_mut().unwrap();
        if let Some(&first) = top.1.get(&key) {
            return Some((full, first, i + 1));
        }
        top.1.insert(key.clone(), i + 1);
        last_key = key;
    }
    None
}

/// Parses `a.b.c=value` and sets it in `root`, creating maps as needed; the value is YAML.
pub fn apply_override(root: &mut Value, assignment: &str) -> std::result::Result<(), String> {
    let (key, val) = assignment
        .split_once('=')
        .ok_or_else(|| format!("override '{assignment}' is not KEY=VALUE (e.g. -o epochs=3)"))?;
    check_yaml_nesting(val).map_err(|e| format!("override of {key}: value {e}"))?;
    let mut val: Value = serde_yaml_ng::from_str(val)
        .map_err(|e| format!("override '{assignment}': value is not YAML: {e}"))?;
    // `-o DATASET.train.file_path=a,b` lists several inputs, as the YAML list [a, b] would.
    if key.ends_with(".file_path") {
        if let Value::String(s) = &val {
            if s.contains(',') {
                val = Value::Sequence(
                    s.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_string()))
                        .collect(),
                );
            }
        }
    }
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_mapping() {
            *cur = Value::Mapping(Default::default());
        }
        let map = cur.as_mapping_mut().unwrap();
        let k = Value::String(p.to_string());
        if i == parts.len() - 1 {
            map.insert(k, val);
            return Ok(());
        }
        if !map.contains_key(&k) {
            map.insert(k.clone(), Value::Mapping(Default::default()));
        }
        cur = map.get_mut(&k).unwrap();
    }
    Ok(())
}

/// Removes null values and the mappings left empty, depth first (configs are a few levels
/// deep and built by us, not read from outside).
pub(super) fn prune_nulls(v: &mut Value) {
    if let Some(m) = v.as_mapping_mut() {
        for (_, x) in m.iter_mut() {
            prune_nulls(x);
        }
        m.retain(|_, x| !x.is_null() && !x.as_mapping().is_some_and(|m| m.is_empty()));
    }
}

/// Largest config file read (PaddleVideo's are ~2 KB; the bound keeps `-c /dev/zero`-like
/// mistakes from filling memory).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A config file's text: a regular file (not a FIFO or device), at most 16 MiB, UTF-8; a
/// leading byte-order mark (Windows editors write one) is dropped — YAML allows it, and left
/// in, it made the parser report "more than one document".
pub(super) fn read_config_text(p: &Path) -> Result<String> {
    let text = crate::data::files::read_regular_text(p, MAX_CONFIG_BYTES, "YAML config")?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// A YAML value on one line, for messages (`[1024, 128]`, `AttentionLstmHead`).
pub(super) fn inline(v: &Value) -> String {
    match v {
        Value::Sequence(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Null => "unset".into(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}
