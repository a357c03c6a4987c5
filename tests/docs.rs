//! Every runnable block of README.md and docs/*.md runs as written (issue #27: docs/serving.md's
//! curl example named a model the demo does not serve and had a BYTES placeholder no value
//! could fill). A block fenced `sh`, `bash` or `python` is runnable; each one either runs here,
//! runs in python/tests/test_docs.py (Python blocks that use the `yt8m` module need the
//! wheel, which `./dev test` builds after this suite), or is listed in [`NOT_RUN`] with the
//! reason, and every entry there must still match a block, so the list cannot go stale.
//!
//! How blocks run: per Markdown file, in order, in one fresh working directory, with the
//! built `yt8m` first on PATH and `python3` being the test venv's. A line `yt8m serve ...`
//! starts the server in the background for the file's later blocks, on free ports: the
//! harness adds `--http-port 0 --grpc-port 0` and rewrites `localhost:8000` / `:8001` in later
//! blocks to the ports the server reports (the docs show the defaults). A block passes when it
//! exits 0 and prints no `"error"`.
//!
//! Also: README's demo numbers are what `yt8m demo` prints.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Block {
    file: String,
    line: usize,
    lang: String,
    text: String,
}

/// The fenced blocks of a Markdown file.
fn blocks(path: &Path, name: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut open: Option<(usize, String, Vec<&str>)> = None;
    for (i, l) in text.lines().enumerate() {
        match (&mut open, l.strip_prefix("```")) {
            (None, Some(lang)) => open = Some((i + 1, lang.trim().to_string(), Vec::new())),
            (Some(_), Some(_)) => {
                let (line, lang, body) = open.take().unwrap();
                out.push(Block {
                    file: name.to_string(),
                    line,
                    lang,
                    text: body.join("\n") + "\n",
                });
            }
            (Some((_, _, body)), None) => body.push(l),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{name}: a fence is never closed");
    out
}

fn all_blocks() -> Vec<Block> {
    let repo = repo();
    let mut files = vec![("README.md".to_string(), repo.join("README.md"))];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for d in docs {
        files.push((
            format!("docs/{}", d.file_name().unwrap().to_string_lossy()),
            d,
        ));
    }
    files.push(("python/README.md".into(), repo.join("python/README.md")));
    files.iter().flat_map(|(name, p)| blocks(p, name)).collect()
}

fn runnable(b: &Block) -> bool {
    matches!(b.lang.as_str(), "sh" | "bash" | "python")
}

/// Python blocks that use the `yt8m` module: run by python/tests/test_docs.py.
fn for_pytest(b: &Block) -> bool {
    b.lang == "python" && b.text.contains("yt8m.")
}

/// Runnable blocks not run here: (file, text the block contains, why).
const NOT_RUN: &[(&str, &str, &str)] = &[
    (
        "README.md",
        "./dev demo",
        "set-up commands: `./dev test` is this suite; `./dev demo` builds and runs `yt8m demo`, \
         whose numbers readme_demo_numbers_are_what_the_demo_prints checks",
    ),
    (
        "README.md",
        "configs/attention_lstm_youtube8m.yaml --validate",
        "full-size training on the full dataset (days); tests/train.rs trains the same model small",
    ),
    (
        "README.md",
        "configs/moe_video.yaml",
        "3.6 min on the real shards; tests/video_level.rs trains that config",
    ),
    (
        "docs/benchmarks.md",
        "yt8m bench eval",
        "benchmark (minutes); the table beside it is its output, and tests/observe.rs runs each \
         bench verb's --help examples",
    ),
    (
        "docs/benchmarks.md",
        "yt8m bench segments",
        "benchmark (the full-size model: a minute on 2 cores); the table beside it is its output",
    ),
    (
        "docs/benchmarks.md",
        "yt8m bench read",
        "benchmark; needs a TensorFlow venv",
    ),
    (
        "docs/benchmarks.md",
        "S --batch 16 --rounds 2",
        "benchmark (full size, minutes)",
    ),
    (
        "docs/benchmarks.md",
        "bench train -c configs/demo_small.yaml",
        "benchmark (minutes)",
    ),
    (
        "docs/benchmarks.md",
        "yt8m bench predict --batch-size 64,128",
        "benchmark (minutes)",
    ),
    (
        "docs/benchmarks.md",
        "bench_paddle_inference.py",
        "benchmark; needs a PaddlePaddle venv",
    ),
    (
        "docs/benchmarks.md",
        "configs/logistic_video.yaml --out runs/logistic",
        "benchmark (minutes on the real shards); tests/video_level.rs trains both configs",
    ),
    (
        "docs/benchmarks.md",
        "--precision fp32,bf16",
        "benchmark (minutes; bf16 timings only mean something where bf16 is native)",
    ),
    (
        "docs/benchmarks.md",
        "YT8M_EMULATE_CPU=avx2 ./dev test",
        "runs the whole suite, this test included",
    ),
    (
        "docs/benchmarks.md",
        "scripts/bench_bundle.py",
        "benchmark; needs the installed wheel, a bundle and shards made beforehand",
    ),
    (
        "docs/benchmarks.md",
        "scripts/bench_python.py",
        "benchmark; needs a TensorFlow venv",
    ),
    (
        "docs/benchmarks.md",
        "yt8m bench serve --model demo/bundle",
        "benchmark (tens of seconds of load per level); tests/serve.rs runs bench serve",
    ),
    (
        "docs/benchmarks.md",
        "yt8m bench extract --python",
        "benchmark (needs TensorFlow and OpenCV in a venv, builds a 95 MB stand-in graph); \
         tests/extract.rs checks the same equality on small videos",
    ),
    (
        "docs/data.md",
        "pip install tensorflow-cpu",
        "needs TensorFlow (a 600 MB download); tests/example_proto.rs holds records TensorFlow wrote",
    ),
    ("docs/distributed.md", "per-rank.sh", "needs 8 GPUs"),
    (
        "docs/extract.md",
        "inception-2015-12-05.tgz",
        "downloads the official extractor files (100 MB) from Google; tests/extract.rs uses a \
         stand-in extractor directory with the same layout",
    ),
    (
        "docs/extract.md",
        "vggish_model.ckpt",
        "downloads the VGGish files (290 MB) from Google; tests/extract.rs uses a stand-in \
         checkpoint TensorFlow's Saver wrote",
    ),
    (
        "docs/extract.md",
        "yt8m extract clip.mp4 more_videos/",
        "needs the official extractor files and your videos; tests/extract.rs runs extract, \
         --csv, --level video and inspect on videos it makes, with a stand-in extractor",
    ),
    (
        "docs/extract.md",
        "yt8m predict --model bundle clip.mp4",
        "needs the official extractor files and a bundle; tests/extract.rs predicts from video \
         files with a stand-in extractor",
    ),
    (
        "docs/distributed.md",
        "mpirun -np 4 yt8m train -c configs/attention_lstm_youtube8m.yaml",
        "full-size data-parallel training; tests/distributed.rs runs mpirun on the tiny config",
    ),
    (
        "docs/distributed.md",
        "mpirun --hostfile hosts",
        "needs 16 machines",
    ),
    (
        "docs/distributed.md",
        "CONFIG ...",
        "a pattern with placeholders, shown for its thread arithmetic",
    ),
    (
        "docs/python.md",
        "./dev wheel",
        "`./dev test` builds the wheel and pip-installs it into a fresh venv (the same two steps)",
    ),
];

fn rule_for(b: &Block) -> Option<&'static (&'static str, &'static str, &'static str)> {
    NOT_RUN
        .iter()
        .find(|(f, needle, _)| *f == b.file && b.text.contains(needle))
}

#[test]
fn every_runnable_block_is_run_tested_elsewhere_or_excused() {
    let blocks = all_blocks();
    assert!(blocks.len() > 20, "{} blocks", blocks.len());
    let mut used = std::collections::HashSet::new();
    for b in blocks.iter().filter(|b| runnable(b)) {
        if let Some(r) = rule_for(b) {
            assert!(
                !for_pytest(b),
                "{}:{} is run by pytest and excused here",
                b.file,
                b.line
            );
            used.insert(r.1);
        }
    }
    let stale: Vec<_> = NOT_RUN
        .iter()
        .filter(|r| !used.contains(r.1))
        .map(|r| format!("{}: {}", r.0, r.1))
        .collect();
    assert!(
        stale.is_empty(),
        "NOT_RUN entries matching no block: {stale:?}"
    );
    // An unlabelled fence is never run: it must not hide a command (a line `yt8m VERB ...`)
    // unless it is a pattern with placeholders (OLD / NEW binaries).
    let mut hidden = Vec::new();
    for b in blocks.iter().filter(|b| b.lang.is_empty()) {
        for l in b.text.lines() {
            let mut w = l.split_whitespace();
            let verb = w.next() == Some("yt8m")
                && w.next()
                    .is_some_and(|v| v.chars().all(|c| c.is_ascii_lowercase()));
            if verb && !l.contains("OLD") && !l.contains("NEW") {
                hidden.push(format!("{}:{}: {l}", b.file, b.line));
            }
        }
    }
    assert!(
        hidden.is_empty(),
        "commands in unlabelled blocks (fence them `sh`): {hidden:#?}"
    );
}

/// A `yt8m serve` started from a block, killed with the test.
struct Served {
    child: Child,
    http: u16,
    grpc: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_path() -> String {
    let py = PathBuf::from(python());
    format!(
        "{}:{}:{}",
        bin().parent().unwrap().display(),
        py.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn serve(line: &str, dir: &Path) -> Served {
    let cmd = line.split(" #").next().unwrap().trim();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec {cmd} --host 127.0.0.1 --http-port 0 --grpc-port 0"
        ))
        .current_dir(dir)
        .env("PATH", env_path())
        .env("YT8M_THREADS", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let t0 = Instant::now();
    let mut line = String::new();
    let port_after = |l: &str, pat: &str| -> Option<u16> {
        let r = &l[l.find(pat)? + pat.len()..];
        r[..r.find(|c: char| !c.is_ascii_digit())?].parse().ok()
    };
    let (http, grpc) = loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 || t0.elapsed() > Duration::from_secs(60) {
            panic!("`{cmd}` did not start: {line}");
        }
        if let Some(h) = port_after(&line, "http://127.0.0.1:") {
            break (h, port_after(&line, "grpc://127.0.0.1:").unwrap_or(0));
        }
    };
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = err.read_to_string(&mut sink);
    });
    Served { child, http, grpc }
}

/// Runs `text` as the block's language in `dir`; panics with both streams unless it exits 0
/// and prints no `"error"`.
fn run_block(b: &Block, text: &str, dir: &Path) {
    let (prog, flag) = if b.lang == "python" {
        (python(), "-c")
    } else {
        ("bash".to_string(), "-c")
    };
    let script = if b.lang == "python" {
        text.to_string()
    } else {
        format!("set -euo pipefail\n{text}")
    };
    let t = Instant::now();
    let o = Command::new(prog)
        .args([flag, &script])
        .current_dir(dir)
        .env("PATH", env_path())
        .env("YT8M_THREADS", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    println!(
        "ran {}:{} ({:.1} s): {} bytes of output",
        b.file,
        b.line,
        t.elapsed().as_secs_f64(),
        out.len()
    );
    assert!(
        o.status.success() && !out.contains("\"error\""),
        "{}:{} failed ({}):\n--- block\n{text}\n--- stdout\n{out}\n--- stderr\n{err}",
        b.file,
        b.line,
        o.status
    );
}

#[test]
fn every_runnable_block_runs_as_written() {
    let blocks = all_blocks();
    let mut files: Vec<&str> = blocks.iter().map(|b| b.file.as_str()).collect();
    files.dedup();
    let mut ran = 0;
    for f in files {
        let dir = tempdir(&format!("docs-{}", f.replace('/', "_")));
        let mut server: Option<Served> = None;
        for b in blocks.iter().filter(|b| b.file == f && runnable(b)) {
            if rule_for(b).is_some() || for_pytest(b) {
                continue;
            }
            let mut text = b.text.clone();
            if let Some(s) = &server {
                text = text
                    .replace("localhost:8000", &format!("localhost:{}", s.http))
                    .replace("localhost:8001", &format!("localhost:{}", s.grpc));
            }
            // A server line: what comes before it runs first, the server stays up for the
            // file's later blocks.
            let lines: Vec<&str> = text.lines().collect();
            if let Some(i) = lines.iter().position(|l| l.starts_with("yt8m serve ")) {
                assert_eq!(i, lines.len() - 1, "{f}:{}: put `yt8m serve` last", b.line);
                if i > 0 {
                    run_block(b, &(lines[..i].join("\n") + "\n"), &dir);
                }
                server = Some(serve(lines[i], &dir));
            } else {
                run_block(b, &text, &dir);
            }
            ran += 1;
        }
    }
    println!("{ran} blocks ran");
    assert!(ran >= 3, "{ran}");
}

/// README's numbers for the demo are what `yt8m demo` prints: Hit@1 and the class-prior GAP
/// (no training in it) to the digits README shows; GAP and PERR within the ranges README
/// states for other thread counts and SIMD widths (training rounds differently there:
/// measured GAP 0.879076–0.881467, PERR 0.875000–0.886719 over 1–2 threads on AVX-512, AVX2
/// and SSE4 kernels), and the headline values inside those ranges.
#[test]
fn readme_demo_numbers_are_what_the_demo_prints() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let readme = readme.replace('\n', " ");
    let num = |hay: &str, pat: &str| -> String {
        let i = hay
            .find(pat)
            .unwrap_or_else(|| panic!("'{pat}' not in README"));
        hay[i + pat.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect()
    };
    let f = |s: &str| s.parse::<f64>().unwrap();
    let gap = num(&readme, "**GAP ");
    let hit1 = num(&readme, ", Hit@1 ");
    let perr = num(&readme, ", PERR ");
    let prior = num(&readme, "class-prior baseline of GAP ");
    let gap_lo = num(&readme, "land within GAP ");
    let gap_hi = num(&readme, &format!("GAP {gap_lo}–"));
    let perr_lo = num(&readme, &format!("{gap_hi}, PERR "));
    let perr_hi = num(&readme, &format!("PERR {perr_lo}–"));
    let within = |v: f64, lo: &str, hi: &str| f(lo) <= v && v <= f(hi);
    assert!(
        within(f(&gap), &gap_lo, &gap_hi),
        "README's GAP {gap} outside its own range"
    );
    assert!(
        within(f(&perr), &perr_lo, &perr_hi),
        "README's PERR {perr} outside its range"
    );

    let dir = tempdir("docs-demo");
    let o = Command::new(bin())
        .arg("demo")
        .current_dir(&dir)
        .env("YT8M_THREADS", "2")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    // The official metrics come first ([demo 3/5]), PaddleVideo's per-batch ones after.
    let official = &out[out.find("[demo 3/5]").unwrap()..];
    let printed = |name: &str| -> f64 {
        let l = official
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let shown = |v: f64, like: &str| {
        let digits = like.split('.').nth(1).map_or(0, str::len);
        format!("{v:.digits$}")
    };
    let (g, p, h) = (printed("GAP"), printed("PERR"), printed("Hit@1"));
    let pr = f(&num(official, "scored by class frequency): GAP "));
    println!(
        "README: GAP {gap} [{gap_lo}, {gap_hi}], PERR {perr} [{perr_lo}, {perr_hi}], Hit@1 {hit1}, prior {prior}"
    );
    println!("demo:   GAP {g}, PERR {p}, Hit@1 {h}, prior {pr}");
    assert_eq!(shown(h, &hit1), hit1, "README's Hit@1");
    assert_eq!(shown(pr, &prior), prior, "README's class-prior GAP");
    assert!(
        within(g, &gap_lo, &gap_hi),
        "the demo's GAP {g} is outside README's range"
    );
    assert!(
        within(p, &perr_lo, &perr_hi),
        "the demo's PERR {p} is outside README's range"
    );
}
