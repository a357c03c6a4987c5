//! Hostile and broken input (issue #12): every case builds its bad file in a temp dir, runs the
//! real binary with a deadline (a hang fails), and checks the exit code (1 with a message, never
//! a panic's 101, an abort's 134 or a signal), that the message names file / record / key, the
//! child's peak memory where a file could amplify it, and that no input or earlier output was
//! harmed.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tch::{Device, Kind};
use yt8m::config::Config;
use yt8m::data::proto::{EncFeature, encode_example, encode_feature};
use yt8m::data::tfrecord::{frame_record, masked_crc};
use yt8m::model::Model;

struct Out {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    /// Peak resident memory of the child, bytes (wait4's ru_maxrss).
    max_rss: u64,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs the binary with `args`; killed (and the test failed) after `secs`.
fn run_env(args: &[&str], env: &[(&str, &str)], secs: u64) -> Out {
    let mut c = Command::new(bin());
    c.args(args)
        .env("YT8M_THREADS", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut so, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut se, &mut s);
        s
    });
    let t0 = Instant::now();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: our own child's pid; reaps it and fills `ru`.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            // SAFETY: as above.
            unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            panic!("yt8m {args:?} still running after {secs} s: it hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = Out {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        max_rss: ru.ru_maxrss as u64 * 1024,
    };
    std::mem::forget(child); // already reaped
    out
}

fn run(args: &[&str]) -> Out {
    run_env(args, &[], 120)
}

/// Exit 1 with "error:" and every needle; no panic, abort or C++ trace.
fn fails_cleanly(o: &Out, needles: &[&str]) {
    println!("{}", o.stderr);
    assert_eq!(o.signal, None, "killed by a signal: {}", o.stderr);
    assert_eq!(o.code, Some(1), "exit code {:?}: {}", o.code, o.stderr);
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "Exception raised from",
        "frame #",
    ] {
        assert!(!o.stderr.contains(bad), "'{bad}' in: {}", o.stderr);
    }
    assert!(o.stderr.contains("error:"), "{}", o.stderr);
    for n in needles {
        assert!(o.stderr.contains(n), "'{n}' not in: {}", o.stderr);
    }
}

fn python() -> Option<String> {
    let p = std::env::var("YT8M_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/yt8m/venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    });
    let ok = Command::new(&p)
        .args(["-c", "import numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(p)
    } else {
        println!("skipped: no Python with numpy at {p} (./dev test installs it)");
        None
    }
}

fn py(code: &str) {
    let Some(p) = python() else { return };
    let o = Command::new(p).args(["-c", code]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn sha(p: &Path) -> String {
    yt8m::runtime::sha256_file(p).unwrap()
}

fn tiny_config() -> String {
    repo().join("configs/tiny_test.yaml").display().to_string()
}

/// `yt8m export` of the tiny config with weights `w` into `out` (no ONNX).
fn export_tiny(w: &Path, out: &Path) -> Out {
    run(&[
        "export",
        "-c",
        &tiny_config(),
        "-w",
        w.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-onnx",
    ])
}

/// A tiny 20-class frame-level bundle with random weights.
fn tiny_bundle(d: &Path) -> PathBuf {
    let cfg = Config::load(Some(Path::new(&tiny_config())), &[]).unwrap();
    tch::manual_seed(1);
    let m = Model::new(cfg.architecture(), Device::Cpu, Kind::Float);
    let w = d.join("w.safetensors");
    m.save_safetensors(&w).unwrap();
    let out = d.join("bundle");
    let o = export_tiny(&w, &out);
    assert!(o.ok(), "{}", o.stderr);
    out
}

fn npy_bytes(shape: &[usize], descr: &str, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    yt8m::data::npy::write_npy(&mut v, shape, descr, data).unwrap();
    v
}

/// A stored zip of `.npy` members (what numpy.savez writes).
fn npz_bytes(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut cur);
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (n, b) in members {
            z.start_file(format!("{n}.npy"), o).unwrap();
            std::io::Write::write_all(&mut z, b).unwrap();
        }
        z.finish().unwrap();
    }
    cur.into_inner()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn npy_headers_that_lie_are_refused_before_reading() {
    let d = tempdir("h-npy");
    let b = tiny_bundle(&d);
    let bs = b.to_str().unwrap();
    // Shape (300, 1152) over 100 bytes: used to read past the data (a different prediction per
    // run, exit 0).
    let p = d.join("short.npy");
    std::fs::write(&p, npy_bytes(&[300, 1152], "|u1", &[7u8; 100])).unwrap();
    let o = run(&["predict", "--model", bs, p.to_str().unwrap()]);
    fails_cleanly(
        &o,
        &["short.npy", "345600 bytes of data", "100 bytes follow"],
    );
    // A header claiming 1e14 bytes: used to end in a raw libtorch allocator trace.
    let p = d.join("huge.npy");
    std::fs::write(&p, npy_bytes(&[10_000_000, 10_000_000], "<f4", &[0u8; 64])).unwrap();
    let o = run(&["predict", "--model", bs, p.to_str().unwrap()]);
    fails_cleanly(&o, &["huge.npy", "bytes follow"]);
    // Overflowing shape.
    let p = d.join("overflow.npy");
    std::fs::write(&p, npy_bytes(&[usize::MAX / 2, 3], "|u1", &[0u8; 6])).unwrap();
    fails_cleanly(
        &run(&["predict", "--model", bs, p.to_str().unwrap()]),
        &["overflow.npy", "more elements"],
    );
    // Non-finite float features.
    let mut v = vec![0.0f32; 2 * 1152];
    v[1152 + 5] = f32::NAN;
    let p = d.join("nan.npy");
    std::fs::write(&p, npy_bytes(&[2, 1152], "<f4", &f32_bytes(&v))).unwrap();
    fails_cleanly(
        &run(&["predict", "--model", bs, p.to_str().unwrap()]),
        &["nan.npy", "frame 1 column 5", "finite"],
    );
    // Object arrays, big-endian, Fortran order: named.
    for (descr, what) in [("|O", "not supported"), (">f4", "big-endian")] {
        let p = d.join("odd.npy");
        std::fs::write(&p, npy_bytes(&[1, 1152], descr, &[0u8; 4 * 1152])).unwrap();
        fails_cleanly(
            &run(&["predict", "--model", bs, p.to_str().unwrap()]),
            &["odd.npy", what],
        );
    }
    // And a good one still predicts.
    let p = d.join("good.npy");
    std::fs::write(&p, npy_bytes(&[3, 1152], "|u1", &[128u8; 3 * 1152])).unwrap();
    let o = run(&[
        "predict",
        "--model",
        bs,
        p.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert!(
        o.ok() && o.stdout.contains("\"id\":\"good\""),
        "{}",
        o.stderr
    );
}

#[test]
fn npz_members_and_scores_are_checked() {
    let d = tempdir("h-npz");
    let labels = npy_bytes(&[2, 3], "|u1", &[1, 0, 0, 0, 1, 0]);
    let good = npy_bytes(&[2, 3], "<f4", &f32_bytes(&[0.9, 0.1, 0.2, 0.3, 0.8, 0.1]));
    let p = d.join("good.npz");
    std::fs::write(
        &p,
        npz_bytes(&[("predictions", good.clone()), ("labels", labels.clone())]),
    )
    .unwrap();
    let o = run(&["evaluate", "--scores", p.to_str().unwrap(), "--json"]);
    assert!(o.ok() && o.stdout.contains("gap"), "{}", o.stderr);
    // NaN in the scores: the NaN check itself used to crash.
    let nan = npy_bytes(
        &[2, 3],
        "<f4",
        &f32_bytes(&[0.9, 0.1, 0.2, 0.3, f32::NAN, 0.1]),
    );
    let p = d.join("nan.npz");
    std::fs::write(
        &p,
        npz_bytes(&[("predictions", nan), ("labels", labels.clone())]),
    )
    .unwrap();
    fails_cleanly(
        &run(&["evaluate", "--scores", p.to_str().unwrap()]),
        &["nan.npz", "row 1 class 1", "finite"],
    );
    // Zero classes: used to divide by zero.
    let p = d.join("zero.npz");
    std::fs::write(
        &p,
        npz_bytes(&[
            ("predictions", npy_bytes(&[2, 0], "<f4", &[])),
            ("labels", npy_bytes(&[2, 0], "|u1", &[])),
        ]),
    )
    .unwrap();
    fails_cleanly(
        &run(&["evaluate", "--scores", p.to_str().unwrap()]),
        &["zero.npz", "0 classes"],
    );
    // A member whose header lies about its shape.
    let p = d.join("lying.npz");
    std::fs::write(
        &p,
        npz_bytes(&[
            ("predictions", npy_bytes(&[2000, 3], "<f4", &[0u8; 24])),
            ("labels", labels.clone()),
        ]),
    )
    .unwrap();
    fails_cleanly(
        &run(&["evaluate", "--scores", p.to_str().unwrap()]),
        &["lying.npz", "predictions", "bytes follow"],
    );
    // LZMA (method 14) and encrypted members: refused, not a panic inside a decoder.
    let base = npz_bytes(&[("predictions", good), ("labels", labels)]);
    let patch = |f: &dyn Fn(&mut Vec<u8>, usize, bool)| {
        let mut b = base.clone();
        let locals: Vec<usize> = b
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"PK\x03\x04")
            .map(|(i, _)| i)
            .collect();
        let centrals: Vec<usize> = b
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"PK\x01\x02")
            .map(|(i, _)| i)
            .collect();
        for i in locals {
            f(&mut b, i, false);
        }
        for i in centrals {
            f(&mut b, i, true);
        }
        b
    };
    let lzma = patch(&|b, i, central| {
        let at = i + if central { 10 } else { 8 };
        b[at..at + 2].copy_from_slice(&14u16.to_le_bytes());
    });
    let p = d.join("lzma.npz");
    std::fs::write(&p, lzma).unwrap();
    let o = run(&["evaluate", "--scores", p.to_str().unwrap()]);
    fails_cleanly(&o, &["lzma.npz"]);
    let enc = patch(&|b, i, central| {
        let at = i + if central { 8 } else { 6 };
        b[at] |= 1;
    });
    let p = d.join("enc.npz");
    std::fs::write(&p, enc).unwrap();
    fails_cleanly(
        &run(&["evaluate", "--scores", p.to_str().unwrap()]),
        &["enc.npz"],
    );
    // --num-classes 0 is a usage error (exit 2), not a panic.
    let o = run(&[
        "evaluate",
        "--scores",
        "x.npz",
        "--ids",
        "x",
        "--labels",
        "y",
        "--num-classes",
        "0",
    ]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("class count"), "{}", o.stderr);
}

#[test]
fn numpy_savez_compressed_files_are_read() {
    let d = tempdir("h-npzc");
    let p = d.join("c.npz");
    py(&format!(
        "import numpy as np; np.savez_compressed({:?}, predictions=np.array([[0.9,0.1],[0.2,0.8]],'f4'), labels=np.array([[1,0],[0,1]],'u1'))",
        p.display().to_string()
    ));
    if !p.exists() {
        return;
    }
    let o = run(&["evaluate", "--scores", p.to_str().unwrap(), "--json"]);
    assert!(o.ok(), "{}", o.stderr);
    assert!(o.stdout.contains("\"hit_at_one\":1.0"), "{}", o.stdout);
}

#[test]
fn a_dead_reader_thread_fails_the_command() {
    let d = tempdir("h-panic");
    synth_shards(&d.join("s"), 48, 2, 3, 10);
    let run_dir = d.join("run");
    let args = tiny_train_args(&run_dir, &d.join("s"), &["-o".into(), "epochs=1".into()]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = run_env(&args, &[("YT8M_FAULT_READER_PANIC", "train0001")], 120);
    fails_cleanly(&o, &["train0001.tfrecord", "injected fault"]);
    assert!(
        !run_dir.join("checkpoints/latest").exists(),
        "a failed epoch wrote a checkpoint"
    );
    // The same data without the fault trains; then `test` with the fault fails too.
    let run2 = d.join("run2");
    let args = tiny_train_args(&run2, &d.join("s"), &["-o".into(), "epochs=1".into()]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = run(&args);
    assert!(o.ok(), "{}", o.stderr);
    let s = d.join("s").display().to_string();
    let w = run2.join("checkpoints/epoch_00001").display().to_string();
    let over = format!("DATASET.test.file_path={s}");
    let targs = ["test", "-c", &tiny_config(), "-w", &w, "-o", &over];
    let o = run_env(&targs, &[("YT8M_FAULT_READER_PANIC", "train0000")], 120);
    fails_cleanly(&o, &["train0000.tfrecord", "injected fault"]);
    assert!(run(&targs).ok());
}

/// Protocol-2 pickle of `depth` nested empty lists: `]` × depth, then APPEND × (depth − 1).
fn nested_lists(depth: usize) -> Vec<u8> {
    let mut b = vec![0x80, 2];
    b.extend(std::iter::repeat_n(b']', depth));
    b.extend(std::iter::repeat_n(b'a', depth - 1));
    b.push(b'.');
    b
}

#[test]
fn deeply_nested_pickles_are_refused_without_recursion() {
    let d = tempdir("h-nest");
    let b = tiny_bundle(&d);
    let deep = d.join("deep.pkl");
    std::fs::write(&deep, nested_lists(1_000_000)).unwrap();
    let dp = deep.to_str().unwrap();
    fails_cleanly(&run(&["inspect", dp]), &["deep.pkl", "nested more than 64"]);
    fails_cleanly(
        &run(&["predict", "--model", b.to_str().unwrap(), dp]),
        &["deep.pkl", "nested"],
    );
    let pd = d.join("deep.pdparams");
    std::fs::write(&pd, nested_lists(1_000_000)).unwrap();
    fails_cleanly(
        &run(&[
            "convert",
            pd.to_str().unwrap(),
            "--out",
            d.join("x.safetensors").to_str().unwrap(),
        ]),
        &["deep.pdparams", "nested"],
    );
    assert!(!d.join("x.safetensors").exists());
    // 1e5 deep inside a training split (the loader thread used to overflow its stack).
    let tr = d.join("train");
    std::fs::create_dir_all(&tr).unwrap();
    std::fs::write(tr.join("a.pkl"), nested_lists(100_000)).unwrap();
    let args = tiny_train_args(&d.join("run"), &tr, &[]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    fails_cleanly(&run(&args), &["a.pkl", "nested"]);
    // A cycle: a list appended to itself (DUP, APPEND).
    let cyc = d.join("cycle.pkl");
    std::fs::write(&cyc, [0x80, 2, b']', b'2', b'a', b'.']).unwrap();
    fails_cleanly(
        &run(&["inspect", cyc.to_str().unwrap()]),
        &["cycle.pkl", "inside itself"],
    );
    // A flood of values.
    let mut flood = vec![0x80, 2, b']', b'('];
    flood.extend(std::iter::repeat_n(b'N', 3_000_000));
    flood.extend_from_slice(b"e.");
    let fl = d.join("flood.pkl");
    std::fs::write(&fl, flood).unwrap();
    fails_cleanly(
        &run(&["inspect", fl.to_str().unwrap()]),
        &["flood.pkl", "more than 1000000 values"],
    );
}

#[test]
fn pickles_that_amplify_memory_or_lie_about_types_are_refused() {
    let d = tempdir("h-pkl");
    let amp = d.join("amp.pkl");
    let bad_id = d.join("badid.pkl");
    let bad_n = d.join("badn.pkl");
    let ovf = d.join("ovf.pkl");
    let good = d.join("good.pkl");
    py(&format!(
        r#"
import pickle, numpy as np
a = np.zeros((300, 1024), 'u1'); b = np.zeros((300, 128), 'u1')
v = lambda i: {{'video': 'v%d' % i, 'label': [1], 'feature': a, 'audio': b, 'nframes': 300}}
pickle.dump([v(i) for i in range(8000)], open({amp:?}, 'wb'), protocol=2)
pickle.dump([v(0)], open({good:?}, 'wb'), protocol=2)
x = v(0); x['video'] = 5
pickle.dump([x], open({bad_id:?}, 'wb'), protocol=2)
x = v(0); x['nframes'] = 'many'
pickle.dump([x], open({bad_n:?}, 'wb'), protocol=2)
try:
    from numpy._core.multiarray import _reconstruct
except ImportError:
    from numpy.core.multiarray import _reconstruct
class Fake:
    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0,), b'b'), (1, (2**62, 2**62), np.dtype('u1'), False, b''))
x = v(0); x['feature'] = Fake()
pickle.dump([x], open({ovf:?}, 'wb'), protocol=2)
"#,
        amp = amp.display().to_string(),
        good = good.display().to_string(),
        bad_id = bad_id.display().to_string(),
        bad_n = bad_n.display().to_string(),
        ovf = ovf.display().to_string(),
    ));
    if !amp.exists() {
        return;
    }
    let base = run(&["inspect", good.to_str().unwrap()]);
    assert!(base.ok(), "{}", base.stderr);
    let size = std::fs::metadata(&amp).unwrap().len();
    let o = run(&["inspect", amp.to_str().unwrap()]);
    fails_cleanly(&o, &["amp.pkl", "referenced by several videos"]);
    let over = o.max_rss.saturating_sub(base.max_rss);
    println!(
        "amplifying pickle: {size} bytes, peak {:.0} MB over the baseline {:.0} MB",
        over as f64 / 1e6,
        base.max_rss as f64 / 1e6
    );
    assert!(
        over <= 2 * size + 100_000_000,
        "peak memory {over} over baseline"
    );
    fails_cleanly(
        &run(&["inspect", bad_id.to_str().unwrap()]),
        &["badid.pkl", "'video' is a int"],
    );
    fails_cleanly(
        &run(&["inspect", bad_n.to_str().unwrap()]),
        &["badn.pkl", "nframes"],
    );
    fails_cleanly(
        &run(&["inspect", ovf.to_str().unwrap()]),
        &["ovf.pkl", "overflows"],
    );
}

#[test]
fn a_record_claiming_a_gibibyte_allocates_nothing_of_it() {
    needs_shared!();
    let d = tempdir("h-gib");
    let tr = d.join("train");
    std::fs::create_dir_all(&tr).unwrap();
    let len = (1u64 << 30).to_le_bytes();
    let mut b = len.to_vec();
    b.extend_from_slice(&masked_crc(&len).to_le_bytes());
    b.extend(std::iter::repeat_n(0xAB, 4700));
    let p = tr.join("gib.tfrecord");
    std::fs::write(&p, &b).unwrap();
    let good = d.join("good.tfrecord");
    std::fs::copy(yt8m_data("synthetic/video_2018.tfrecord"), &good).unwrap();
    let base = run(&["inspect", good.to_str().unwrap()]);
    assert!(base.ok(), "{}", base.stderr);
    let o = run(&["inspect", p.to_str().unwrap()]);
    fails_cleanly(
        &o,
        &[
            "gib.tfrecord",
            "record 0",
            "1073741824 payload bytes",
            "4700 bytes",
        ],
    );
    let over = o.max_rss.saturating_sub(base.max_rss);
    println!("peak {over} bytes over the baseline");
    assert!(over < 100_000_000, "{over}");
    // The memory-mapped reader (Python's read(copy=False)) slices the map instead of
    // allocating, and refuses the claim with the same message.
    let spec = yt8m::data::FeatureSpec {
        num_classes: 3862,
        ..Default::default()
    };
    let e = yt8m::data::sources::read_shard_with(
        &p,
        &spec,
        false,
        yt8m::data::sources::FrameStore::Mapped,
        |_| true,
    )
    .unwrap_err();
    let msg = e.to_string();
    for want in [
        "gib.tfrecord",
        "record 0",
        "1073741824 payload bytes",
        "4700 bytes",
    ] {
        assert!(msg.contains(want), "mapped read: {msg}");
    }
    let args = tiny_train_args(
        &d.join("run"),
        &tr,
        &[
            "-o".into(),
            "DATASET.batch_size=1".into(),
            "-o".into(),
            "DATASET.num_workers=4".into(),
        ],
    );
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = run(&args);
    fails_cleanly(&o, &["gib.tfrecord", "truncated record"]);
}

/// Offsets of the records of a file.
fn record_offsets(p: &Path) -> Vec<u64> {
    let mut r = yt8m::data::tfrecord::RecordReader::open(p).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(rec) = r.next_into(&mut buf).unwrap() {
        out.push(rec.offset);
    }
    out
}

#[test]
fn skip_corrupt_resynchronises_after_a_broken_header() {
    needs_shared!();
    let d = tempdir("h-resync");
    let src = yt8m_data("synthetic/frame_2018.tfrecord");
    let offs = record_offsets(&src);
    let n = offs.len();
    assert!(n >= 5, "{n} records");
    let mut b = std::fs::read(&src).unwrap();
    // Record 2: a flipped bit in its length field (length CRC fails) — before, the rest of the
    // file was silently lost under --skip-corrupt.
    b[offs[2] as usize + 1] ^= 0x40;
    let p = d.join("broken.tfrecord");
    std::fs::write(&p, &b).unwrap();
    let o = run(&["inspect", p.to_str().unwrap(), "--skip-corrupt", "--json"]);
    assert!(o.ok(), "{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let f = &j["files"][0];
    assert_eq!(f["records"], n - 1, "{f}");
    let skipped = f["skipped_bytes"][0].as_str().unwrap();
    println!("{skipped}");
    assert!(
        skipped.contains(&format!("skipped bytes {}..{}", offs[2], offs[3]))
            && skipped.contains(&format!("{} intact record(s) read after", n - 3)),
        "{skipped}"
    );
    // Without --skip-corrupt: the error names record and offset.
    fails_cleanly(
        &run(&["inspect", p.to_str().unwrap()]),
        &[
            "broken.tfrecord",
            "record 2",
            &format!("byte offset {}", offs[2]),
            "length CRC",
        ],
    );
    // The loader reads every intact record too, and says what it skipped.
    let spec = yt8m::data::FeatureSpec {
        num_classes: 3862,
        ..Default::default()
    };
    let mut ids = 0;
    let st = yt8m::data::sources::read_shard(&p, &spec, true, |_| {
        ids += 1;
        true
    })
    .unwrap();
    assert_eq!(ids, n - 1);
    assert_eq!(st.resyncs.len(), 1, "{:?}", st.resyncs);
    // Garbage between two records and a truncated tail.
    let mut b = std::fs::read(&src).unwrap();
    let at = offs[1] as usize;
    b.splice(at..at, std::iter::repeat_n(0x5Au8, 777));
    let cut = b.len() - 50;
    b.truncate(cut);
    let p = d.join("garbage.tfrecord");
    std::fs::write(&p, &b).unwrap();
    let o = run(&["inspect", p.to_str().unwrap(), "--skip-corrupt", "--json"]);
    assert!(o.ok(), "{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(j["files"][0]["records"], n - 1, "{}", o.stdout);
    assert!(
        o.stdout
            .contains(&format!("skipped bytes {}..{}", offs[1], offs[1] + 777)),
        "{}",
        o.stdout
    );
}

fn video_record(id: &str, rgb: &[f32], audio: &[f32]) -> Vec<u8> {
    encode_example(&[
        (
            "id",
            encode_feature(&EncFeature::Bytes(vec![id.as_bytes()])),
        ),
        ("labels", encode_feature(&EncFeature::Int64(&[1, 2]))),
        ("mean_rgb", encode_feature(&EncFeature::Float(rgb))),
        ("mean_audio", encode_feature(&EncFeature::Float(audio))),
    ])
}

#[test]
fn non_finite_features_and_scores_are_refused_or_skipped_and_reported() {
    needs_shared!();
    let d = tempdir("h-nan");
    let mut rgb = vec![0.1f32; 1024];
    let audio = vec![0.2f32; 128];
    let mut f = Vec::new();
    frame_record(&video_record("ok1", &rgb, &audio), &mut f);
    rgb[17] = f32::INFINITY;
    frame_record(&video_record("bad", &rgb, &audio), &mut f);
    rgb[17] = 0.1;
    frame_record(&video_record("ok2", &rgb, &audio), &mut f);
    let p = d.join("nan.tfrecord");
    std::fs::write(&p, &f).unwrap();
    let spec = yt8m::data::FeatureSpec {
        level: yt8m::data::Level::Video,
        num_classes: 3862,
        ..Default::default()
    };
    let e = yt8m::data::sources::read_shard(&p, &spec, false, |_| true).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("nan.tfrecord")
            && msg.contains("record 1")
            && msg.contains("video 'bad'")
            && msg.contains("key 'mean_rgb'")
            && msg.contains("value 17 is inf"),
        "{msg}"
    );
    let mut ids = Vec::new();
    let st = yt8m::data::sources::read_shard(&p, &spec, true, |v| {
        ids.push(v.id);
        true
    })
    .unwrap();
    assert_eq!(ids, ["ok1", "ok2"]);
    assert_eq!(st.skipped.len(), 1);

    // Kaggle CSV: nan scores, duplicate ids, a BOM.
    let labels = yt8m_data("synthetic/video_2018.tfrecord");
    let ls = labels.to_str().unwrap();
    let csv = d.join("sub.csv");
    std::fs::write(&csv, "VideoId,LabelConfidencePairs\nabc,1 0.5 2 nan\n").unwrap();
    fails_cleanly(
        &run(&[
            "evaluate",
            "--kaggle",
            csv.to_str().unwrap(),
            "--labels",
            ls,
        ]),
        &["sub.csv:2", "abc", "nan", "finite"],
    );
    std::fs::write(
        &csv,
        "VideoId,LabelConfidencePairs\nabc,1 0.5\nxyz,2 0.1\nabc,3 0.2\n",
    )
    .unwrap();
    fails_cleanly(
        &run(&[
            "evaluate",
            "--kaggle",
            csv.to_str().unwrap(),
            "--labels",
            ls,
        ]),
        &["'abc' appears twice", "lines 2 and 4"],
    );
    std::fs::write(&csv, "\u{feff}VideoId,LabelConfidencePairs\nabc,1 0.5\n").unwrap();
    let o = run(&[
        "evaluate",
        "--kaggle",
        csv.to_str().unwrap(),
        "--labels",
        ls,
        "--json",
    ]);
    assert!(o.ok(), "a BOM broke the header: {}", o.stderr);
}

#[test]
fn bundles_may_only_name_their_own_regular_files() {
    needs_shared!();
    let d = tempdir("h-bundle");
    let b = tiny_bundle(&d);
    let input = yt8m_data("derived/paddle_SjJ3_frame.tfrecord");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("bundle.json")).unwrap()).unwrap();
    let with_file = |name: &str| {
        let mut m = manifest.clone();
        m["files"][name] = serde_json::json!("00");
        std::fs::write(b.join("bundle.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    };
    let predict = || {
        run_env(
            &[
                "predict",
                "--model",
                b.to_str().unwrap(),
                input.to_str().unwrap(),
            ],
            &[],
            60,
        )
    };
    for name in ["../../../../etc/passwd", "/etc/shadow", "sub/x", ".."] {
        with_file(name);
        let o = predict();
        fails_cleanly(&o, &[name, "not a file name inside the bundle"]);
        assert!(!o.stderr.contains("sha256"), "{}", o.stderr);
    }
    // A FIFO (used to hang) and a link to /dev/zero (used to hang, growing).
    let fifo = b.join("fifo.bin");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    with_file("fifo.bin");
    fails_cleanly(&predict(), &["fifo.bin", "not a regular file"]);
    std::os::unix::fs::symlink("/dev/zero", b.join("zero.bin")).unwrap();
    with_file("zero.bin");
    fails_cleanly(&predict(), &["zero.bin", "symbolic link"]);
    std::fs::write(
        b.join("bundle.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    assert!(predict().ok());
}

#[test]
fn outputs_never_overwrite_inputs_or_leave_partial_files() {
    needs_shared!();
    let d = tempdir("h-out");
    let b = tiny_bundle(&d);
    let bs = b.to_str().unwrap();
    let input = d.join("in.tfrecord");
    std::fs::copy(yt8m_data("derived/paddle_SjJ3_frame.tfrecord"), &input).unwrap();
    let before = sha(&input);
    let o = run(&[
        "predict",
        "--model",
        bs,
        input.to_str().unwrap(),
        "--out",
        input.to_str().unwrap(),
    ]);
    fails_cleanly(&o, &["in.tfrecord", "refusing to overwrite"]);
    assert_eq!(sha(&input), before, "the input was harmed");
    // Through another spelling of the same file.
    let alias = format!("{}/./in.tfrecord", d.display());
    fails_cleanly(
        &run(&[
            "predict",
            "--model",
            bs,
            input.to_str().unwrap(),
            "--out",
            &alias,
        ]),
        &["refusing"],
    );
    // A failure half-way leaves an earlier output as it was, and no temporary file.
    let out = d.join("preds.jsonl");
    std::fs::write(&out, "earlier results\n").unwrap();
    let bad = d.join("bad.tfrecord");
    std::fs::write(&bad, b"not a tfrecord at all, just text").unwrap();
    let o = run(&[
        "predict",
        "--model",
        bs,
        input.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    fails_cleanly(&o, &["bad.tfrecord"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "earlier results\n");
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Success replaces it whole.
    let o = run(&[
        "predict",
        "--model",
        bs,
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert!(o.ok(), "{}", o.stderr);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .starts_with("{\"id\"")
    );
    // export refuses to replace a directory that is not a bundle.
    let notb = d.join("notabundle");
    std::fs::create_dir_all(&notb).unwrap();
    std::fs::write(notb.join("precious.txt"), "x").unwrap();
    let o = run(&[
        "export",
        "-c",
        &tiny_config(),
        "-w",
        d.join("w.safetensors").to_str().unwrap(),
        "--out",
        notb.to_str().unwrap(),
        "--no-onnx",
    ]);
    fails_cleanly(&o, &["notabundle", "not a bundle"]);
    assert!(notb.join("precious.txt").exists());
}

#[test]
fn bad_configs_name_the_key() {
    let d = tempdir("h-cfg");
    synth_shards(&d.join("s"), 16, 1, 0, 5);
    let cases: &[(&str, &str)] = &[
        ("epochs=0", "epochs must be at least 1"),
        ("DATASET.max_frames=0", "DATASET.max_frames"),
        ("OPTIMIZER.epsilon=0", "OPTIMIZER.epsilon"),
        ("OPTIMIZER.rho=.nan", "OPTIMIZER.rho"),
        ("OPTIMIZER.rho=1.5", "OPTIMIZER.rho"),
        (
            "OPTIMIZER.weight_decay.value=.nan",
            "OPTIMIZER.weight_decay.value",
        ),
        ("OPTIMIZER.grad_clip=-1", "OPTIMIZER.grad_clip"),
        ("OPTIMIZER.momentum=.inf", "OPTIMIZER.momentum"),
        (
            "OPTIMIZER.learning_rate={name: Constant, learning_rate: .nan}",
            "learning_rate",
        ),
        (
            "OPTIMIZER.learning_rate={name: Constant, learning_rate: -0.1}",
            "learning_rate",
        ),
        (
            "OPTIMIZER.learning_rate={name: PiecewiseDecay, boundaries: [1], values: [0.1, .inf]}",
            "values[1]",
        ),
        (
            "MODEL.head.num_classes=1000000000",
            "MODEL.head.num_classes",
        ),
        ("MODEL.head.fc_out1_size=10000000000", "parameters"),
        ("MODEL.head.dropout=.nan", "MODEL.head.dropout"),
        // Closed sets are enums: a misspelt head used to train an AttentionLSTM silently.
        (
            "MODEL.head.name=MoeModl",
            "-o MODEL.head.name=MoeModl: unknown variant `MoeModl`, expected one of `AttentionLstmHead`, `LogisticModel`, `MoeModel`",
        ),
        ("TRAIN.best_metric=gapp", "expected one of `gap`"),
    ];
    for (ov, needle) in cases {
        let args = tiny_train_args(&d.join("run"), &d.join("s"), &["-o".into(), ov.to_string()]);
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        fails_cleanly(&run(&args), &[needle]);
    }
    // A config without MODEL used to train the 108 M-parameter default silently.
    let cfg = d.join("nomodel.yaml");
    std::fs::write(&cfg, "epochs: 1\nDATASET:\n    batch_size: 4\n").unwrap();
    let s = d.join("s").display().to_string();
    let over = format!("DATASET.train.file_path={s}");
    let o = run(&[
        "train",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        &over,
        "--out",
        d.join("r2").to_str().unwrap(),
    ]);
    fails_cleanly(&o, &["nomodel.yaml", "no MODEL section"]);
    // Every video dropped: no "0 steps" success.
    let args = tiny_train_args(
        &d.join("r3"),
        &d.join("s"),
        &["-o".into(), "DATASET.batch_size=64".into()],
    );
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    fails_cleanly(&run(&args), &["fewer than one batch"]);
}

#[test]
fn a_second_training_into_the_same_directory_fails_at_once() {
    let d = tempdir("h-lock");
    synth_shards(&d.join("s"), 16, 1, 0, 5);
    let run_dir = d.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let held = yt8m::checkpoint::RunLock::acquire(&run_dir).unwrap();
    let args = tiny_train_args(&run_dir, &d.join("s"), &[]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let t0 = Instant::now();
    let o = run_env(&args, &[], 30);
    fails_cleanly(
        &o,
        &[
            "in use by another training",
            &format!("PID {}", std::process::id()),
        ],
    );
    assert!(t0.elapsed().as_secs() < 20);
    drop(held);
    let o = run(&args);
    assert!(o.ok(), "{}", o.stderr);
}

#[test]
fn interrupted_saves_are_cleaned_and_resume_finds_the_last_good_state() {
    let d = tempdir("h-ckpt");
    synth_shards(&d.join("s"), 32, 1, 0, 6);
    let run_dir = d.join("run");
    let s = d.join("s").display().to_string();
    let extra = [
        "-o".to_string(),
        "epochs=3".into(),
        "-o".into(),
        format!("DATASET.valid.file_path={s}"),
        "--validate".into(),
        "--stop-after-epochs".into(),
        "2".into(),
    ];
    let args = tiny_train_args(&run_dir, &d.join("s"), &extra);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = run(&args);
    assert!(o.ok(), "{}", o.stderr);
    let ck = run_dir.join("checkpoints");
    assert!(ck.join("best").is_dir());
    // What a kill at the worst moments leaves: best moved aside mid-swap (on a file system
    // without atomic exchange), a half-written temporary epoch, a temporary pointer file, and
    // `latest` naming a directory that is gone.
    std::fs::rename(ck.join("best"), ck.join(".tmp-best-4242")).unwrap();
    std::fs::create_dir_all(ck.join(".tmp-epoch_00003-4242")).unwrap();
    std::fs::write(ck.join(".tmp-epoch_00003-4242/model.safetensors"), b"half").unwrap();
    std::fs::write(ck.join(".latest.tmp-4242"), b"epoch_000").unwrap();
    std::fs::write(ck.join("latest"), "epoch_00007").unwrap();
    let mut resume = extra.to_vec();
    resume.truncate(5);
    resume.push("--resume".into());
    let args = tiny_train_args(&run_dir, &d.join("s"), &resume);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = run(&args);
    println!("{}", o.stderr);
    assert!(o.ok(), "{}", o.stderr);
    assert!(
        o.stderr.contains("restoring") && o.stderr.contains("not a complete checkpoint"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("epoch 2 done"),
        "did not resume from epoch 2: {}",
        o.stderr
    );
    assert!(ck.join("best/model.safetensors").is_file());
    assert!(ck.join("epoch_00003").is_dir());
    let left: Vec<_> = std::fs::read_dir(&ck)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let log = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    assert!(log.contains("\"kind\":\"resume\""), "{log}");
    // `-w RUN/checkpoints/latest` (the pointer file) works.
    let over = format!("DATASET.test.file_path={s}");
    let o = run(&[
        "test",
        "-c",
        &tiny_config(),
        "-w",
        ck.join("latest").to_str().unwrap(),
        "-o",
        &over,
    ]);
    assert!(o.ok(), "{}", o.stderr);
}

/// One framed SequenceExample record: `rgb_frames` rgb and `audio_frames` audio frames of
/// constant byte `q`, with `id` and `labels`.
fn frame_video(id: &str, labels: &[i64], rgb_frames: usize, audio_frames: usize, q: u8) -> Vec<u8> {
    let frames = |n: usize, d: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| encode_feature(&EncFeature::Bytes(vec![&vec![q; d][..]])))
            .collect()
    };
    let rec = yt8m::data::proto::encode_sequence_example(
        &[
            (
                "id",
                encode_feature(&EncFeature::Bytes(vec![id.as_bytes()])),
            ),
            ("labels", encode_feature(&EncFeature::Int64(labels))),
        ],
        &[
            ("rgb", frames(rgb_frames, 1024)),
            ("audio", frames(audio_frames, 128)),
        ],
    );
    let mut f = Vec::new();
    frame_record(&rec, &mut f);
    f
}

#[test]
fn duplicate_ids_and_unequal_modalities_are_reported() {
    let d = tempdir("h-dup");
    let b = tiny_bundle(&d);
    // A frame-level video with 5 rgb frames and 3 audio frames.
    let f = frame_video("uneq", &[1], 5, 3, 100);
    let a = d.join("a.tfrecord");
    std::fs::write(&a, &f).unwrap();
    let c = d.join("copy.tfrecord");
    std::fs::write(&c, &f).unwrap();
    let o = run(&[
        "predict",
        "--model",
        b.to_str().unwrap(),
        a.to_str().unwrap(),
        c.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    println!("{}", o.stderr);
    assert!(o.ok(), "{}", o.stderr);
    assert!(
        o.stderr.contains("video 'uneq' was already predicted"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("different frame counts") && o.stderr.contains("rgb 5, audio 3"),
        "{}",
        o.stderr
    );
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let d = tempdir("h-nanw");
    let cfg = Config::load(Some(Path::new(&tiny_config())), &[]).unwrap();
    let m = Model::new(cfg.architecture(), Device::Cpu, Kind::Float);
    let (name, t) = m.named_variables().into_iter().next().unwrap();
    tch::no_grad(|| {
        let _ = t.flatten(0, -1).get(0).fill_(f64::NAN);
    });
    let w = d.join("nan.safetensors");
    m.save_safetensors(&w).unwrap();
    let o = export_tiny(&w, &d.join("b"));
    fails_cleanly(
        &o,
        &["nan.safetensors", &format!("tensor '{name}'"), "NaN or Inf"],
    );
    assert!(!d.join("b").exists());
}

#[test]
fn fifos_given_as_shards_are_refused_not_waited_on() {
    let d = tempdir("h-fifo");
    let fifo = d.join("pipe.tfrecord");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let list = d.join("shards.list");
    std::fs::write(&list, format!("{}\n", fifo.display())).unwrap();
    for arg in [&fifo, &list] {
        let o = run_env(&["inspect", arg.to_str().unwrap()], &[], 30);
        fails_cleanly(&o, &["pipe.tfrecord", "not a regular file"]);
    }
}

#[test]
fn predict_ignores_labels_it_does_not_need_and_its_npz_scores_in_evaluate() {
    let d = tempdir("h-npzout");
    let b = tiny_bundle(&d);
    // Labels 25 and 3000 are beyond the 20-class model: prediction must go on.
    let mut f = Vec::new();
    for (id, labels) in [("a", vec![1i64, 25]), ("b", vec![3000]), ("c", vec![2])] {
        f.extend(frame_video(id, &labels, 4, 4, 90));
    }
    let shard = d.join("s.tfrecord");
    std::fs::write(&shard, &f).unwrap();
    let (bs, ss) = (b.to_str().unwrap(), shard.to_str().unwrap());
    let o = run(&[
        "predict", "--model", bs, ss, "--format", "jsonl", "--score", "logits",
    ]);
    assert!(o.ok(), "{}", o.stderr);
    assert_eq!(o.stdout.lines().count(), 3);
    // --format npz: predictions + ids (labels left out: some are unusable); needs --out.
    fails_cleanly(
        &run(&["predict", "--model", bs, ss, "--format", "npz"]),
        &["--out FILE.npz"],
    );
    let npz = d.join("p.npz");
    let o = run(&[
        "predict",
        "--model",
        bs,
        ss,
        "--format",
        "npz",
        "--out",
        npz.to_str().unwrap(),
    ]);
    assert!(o.ok(), "{}", o.stderr);
    let arrays = yt8m::data::npy::read_npz(&npz).unwrap();
    let names: Vec<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["predictions", "ids"]);
    assert_eq!(arrays[0].1.shape, vec![3, 20]);
    assert_eq!(arrays[1].1.to_strings(), ["a", "b", "c"]);
    // A fully labelled shard: labels included, and `evaluate --scores` scores it directly and
    // by id against the shard, alike.
    let good = d.join("good");
    synth_shards(&good, 24, 1, 9, 20);
    let npz2 = d.join("q.npz");
    let o = run(&[
        "predict",
        "--model",
        bs,
        good.to_str().unwrap(),
        "--format",
        "npz",
        "--out",
        npz2.to_str().unwrap(),
    ]);
    assert!(o.ok(), "{}", o.stderr);
    let direct = run(&["evaluate", "--scores", npz2.to_str().unwrap(), "--json"]);
    let by_id = run(&[
        "evaluate",
        "--scores",
        npz2.to_str().unwrap(),
        "--labels",
        good.to_str().unwrap(),
        "--num-classes",
        "20",
        "--json",
    ]);
    assert!(
        direct.ok() && by_id.ok(),
        "{}{}",
        direct.stderr,
        by_id.stderr
    );
    // PaddleVideo's printout: video ids, softmax by default (scores of a video sum to ≤ 1),
    // and the true labels on request.
    let o = run(&[
        "predict",
        "--model",
        bs,
        good.to_str().unwrap(),
        "--format",
        "paddle",
        "--show-labels",
        "--top-k",
        "20",
    ]);
    assert!(o.ok(), "{}", o.stderr);
    assert!(
        o.stdout.contains("(video ") && o.stdout.contains("true labels: ["),
        "{}",
        o.stdout
    );
    let first: f64 = o
        .stdout
        .lines()
        .find(|l| l.contains("top-20 score"))
        .unwrap()
        .split(['[', ']'])
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse::<f64>().unwrap())
        .sum();
    assert!(first <= 1.0 + 1e-5, "softmax scores sum to {first}");
    let g = |o: &Out| {
        serde_json::from_str::<serde_json::Value>(&o.stdout).unwrap()["gap"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(g(&direct), g(&by_id));
}

/// Issue #26 (1): a member whose bytes do not match its CRC-32 — a flipped data bit in a stored
/// member, or a CRC that no longer fits a deflated one — is refused, naming the file and member,
/// instead of scoring wrong numbers with exit 0 (numpy refuses both: "Bad CRC-32").
#[test]
fn npz_members_with_a_bad_crc_are_refused() {
    use std::io::Write;
    let d = tempdir("npz-crc");
    let (n, c) = (6usize, 4usize);
    let scores: Vec<u8> = (0..n * c)
        .flat_map(|i| (((i * 37) % 11) as f32 / 11.0).to_le_bytes())
        .collect();
    let labels: Vec<u8> = (0..n * c).map(|i| u8::from(i % 3 == 0)).collect();
    let member = |descr: &str, data: &[u8]| {
        let mut v = Vec::new();
        yt8m::data::npy::write_npy(&mut v, &[n, c], descr, data).unwrap();
        v
    };
    let members = [
        ("predictions.npy", member("<f4", &scores)),
        ("labels.npy", member("|u1", &labels)),
    ];
    let write = |path: &Path, method: zip::CompressionMethod| {
        let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in &members {
            z.start_file(*name, opts).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    };
    // Stored (numpy.savez): flip one bit of the last score.
    let stored = d.join("stored.npz");
    write(&stored, zip::CompressionMethod::Stored);
    let good = run(&["evaluate", "--scores", stored.to_str().unwrap(), "--json"]);
    assert!(good.ok(), "{}", good.stderr);
    let mut bytes = std::fs::read(&stored).unwrap();
    let at = find(&bytes, &members[0].1).unwrap() + members[0].1.len() - 1;
    bytes[at] ^= 0x10;
    let flipped = d.join("flipped.npz");
    std::fs::write(&flipped, &bytes).unwrap();
    // Still a valid-looking array: before the CRC check this scored other numbers, exit 0.
    fails_cleanly(
        &run(&["evaluate", "--scores", flipped.to_str().unwrap()]),
        &["flipped.npz", "predictions.npy", "CRC-32"],
    );
    // Deflated (numpy.savez_compressed): the CRC stored for a member no longer fits it.
    let deflated = d.join("deflated.npz");
    write(&deflated, zip::CompressionMethod::Deflated);
    let good = run(&["evaluate", "--scores", deflated.to_str().unwrap()]);
    assert!(good.ok(), "{}", good.stderr);
    let crc = zip::ZipArchive::new(std::fs::File::open(&deflated).unwrap())
        .unwrap()
        .by_name("labels.npy")
        .unwrap()
        .crc32();
    let mut bytes = std::fs::read(&deflated).unwrap();
    let mut patched = 0;
    while let Some(i) = find(&bytes, &crc.to_le_bytes()) {
        bytes[i..i + 4].copy_from_slice(&(crc ^ 1).to_le_bytes());
        patched += 1;
    }
    assert!(patched >= 2, "local header and central directory");
    let bad = d.join("badcrc.npz");
    std::fs::write(&bad, &bytes).unwrap();
    fails_cleanly(
        &run(&["evaluate", "--scores", bad.to_str().unwrap()]),
        &["badcrc.npz", "labels.npy", "CRC-32"],
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Issue #26 (6): a failed write to standard output is the user's situation, not a bug: a full
/// device (`> /dev/full`) is a clear error, exit 1 — `--help` included, which exited 0 having
/// printed nothing — and a closed pipe (`| head -1`) ends quietly with 141, as Unix tools do.
#[test]
fn failed_stdout_writes_are_errors_and_closed_pipes_end_quietly() {
    needs_shared!();
    let shard = yt8m_data("synthetic/video_2017.tfrecord");
    let shard = shard.to_str().unwrap();
    let with_stdout = |args: &[&str], stdout: Stdio| {
        let o = Command::new(bin())
            .args(args)
            .env("YT8M_THREADS", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        (o.status, String::from_utf8_lossy(&o.stderr).to_string())
    };
    let d = tempdir("stdout-predict");
    let bundle = tiny_bundle(&d);
    let frames = yt8m_data("synthetic/frame_2018.tfrecord");
    let cases: [&[&str]; 6] = [
        &["inspect", shard],
        &["info"],
        &["--help"],
        &["train", "--print-config", "-c", "configs/tiny_test.yaml"],
        &["inspect", "--json", shard],
        // Its output goes through the library's writer (an error value, not a print! panic).
        &[
            "predict",
            "--model",
            bundle.to_str().unwrap(),
            frames.to_str().unwrap(),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == "configs/tiny_test.yaml" {
                    Box::leak(repo().join(a).display().to_string().into_boxed_str()) as &str
                } else {
                    *a
                }
            })
            .collect();
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let (st, err) = with_stdout(&args, Stdio::from(full));
        println!("{args:?} > /dev/full: {st:?}: {err}");
        assert_eq!(st.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("cannot write to standard output"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("internal error"), "{args:?}: {err}");
        // A pipe whose reader is gone before the first write.
        let mut fds = [0i32; 2];
        // SAFETY: pipe fills two new descriptors; the read end is closed at once and the write
        // end handed to the child (Stdio takes ownership of it).
        let stdout = unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            <Stdio as std::os::fd::FromRawFd>::from_raw_fd(fds[1])
        };
        let (st, err) = with_stdout(&args, stdout);
        println!("{args:?} | (closed): {st:?}: {err}");
        assert_eq!(st.code(), Some(141), "{args:?}: {err}");
        assert!(
            !err.contains("internal error") && !err.contains("error:"),
            "{args:?}: {err}"
        );
    }
}

/// Issue #26 (8): thread counts are bounded by the cores this process may use (with a message)
/// and garbage is refused (`YT8M_THREADS=abc` was ignored silently; 100000 kept a server from
/// ever becoming ready).
#[test]
fn thread_counts_are_bounded_and_garbage_is_refused() {
    for bad in ["abc", "0", "-3", "1.5"] {
        let o = run_env(&["info"], &[("YT8M_THREADS", bad)], 60);
        fails_cleanly(&o, &["YT8M_THREADS", bad, "positive whole number"]);
    }
    let cores = yt8m::data::available_cores();
    let o = run_env(&["info"], &[("YT8M_THREADS", "100000")], 60);
    assert!(o.ok(), "{}", o.stderr);
    println!("{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains(&format!("(libtorch threads {cores})")),
        "{}",
        o.stdout
    );
    assert!(
        o.stderr.contains("100000 libtorch threads asked for"),
        "{}",
        o.stderr
    );
}

/// Issue #26 (5, 7, 12): every file read whole follows one rule (regular file, bounded size,
/// opened without blocking: a FIFO as `-c` blocked forever, `/dev/zero` grew to 4.4 GB); YAML
/// nesting is bounded before parsing (100k `[` took > 30 s); a UTF-8 byte-order mark at the
/// start of a config is accepted (it was "more than one document").
#[test]
fn non_regular_inputs_deep_yaml_and_a_bom_are_handled() {
    let d = tempdir("regular-inputs");
    let fifo = d.join("fifo.yaml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (fifo_s, tiny) = (
        fifo.to_str().unwrap().to_string(),
        repo().join("configs/tiny_test.yaml"),
    );
    let t = Instant::now();
    for args in [
        vec!["train", "--print-config", "-c", fifo_s.as_str()],
        vec!["train", "--print-config", "-c", "/dev/zero"],
        vec![
            "convert",
            fifo_s.as_str(),
            "--out",
            "/tmp/never.safetensors",
        ],
    ] {
        let o = run_env(&args, &[], 30);
        fails_cleanly(&o, &["not a regular file"]);
    }
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    // Deep flow nesting: refused at once, naming the line.
    let deep = d.join("deep.yaml");
    let text = std::fs::read_to_string(&tiny).unwrap();
    std::fs::write(&deep, format!("{text}x: {}\n", "[".repeat(100_000))).unwrap();
    let t = Instant::now();
    let o = run(&["train", "--print-config", "-c", deep.to_str().unwrap()]);
    fails_cleanly(&o, &["deep.yaml", "nested deeper than 64"]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let o = run(&[
        "train",
        "--print-config",
        "-c",
        tiny.to_str().unwrap(),
        "-o",
        &format!("epochs={}", "{a: ".repeat(1000)),
    ]);
    fails_cleanly(&o, &["nested deeper than 64"]);
    // A byte-order mark: the same config as without.
    let bom = d.join("bom.yaml");
    std::fs::write(&bom, format!("\u{feff}{text}")).unwrap();
    let a = run(&["train", "--print-config", "-c", tiny.to_str().unwrap()]);
    let b = run(&["train", "--print-config", "-c", bom.to_str().unwrap()]);
    assert!(a.ok() && b.ok(), "{}{}", a.stderr, b.stderr);
    assert_eq!(a.stdout, b.stdout);
}

/// Issue #26 (10, 11): a `**` glob refuses a symlink cycle instead of reading one file dozens
/// of times (`dirloop/up -> ..`: 164 videos from 4), the same file under two names is read
/// once, and a `.list` entry is its whole line (PaddleVideo's `line.strip()`), spaces and
/// non-ASCII included (`sp ace é.tfrecord` was cut to "sp").
#[test]
fn globs_refuse_symlink_cycles_and_list_entries_keep_their_spaces() {
    let d = tempdir("globs");
    let data = d.join("dirloop");
    synth_shards(&data, 4, 1, 3, 5);
    let shard = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tfrecord"))
        .unwrap();
    let inspect = |args: &[&str]| run(&[&["inspect", "--json"], args].concat());
    let videos = |o: &Out| -> u64 {
        assert!(o.ok(), "{}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["records"].as_u64().unwrap())
            .sum()
    };
    let pattern = format!("{}/**/*.tfrecord", data.display());
    assert_eq!(videos(&inspect(&[&pattern])), 4);
    // The same shard again under a symlinked name: still 4 videos.
    std::os::unix::fs::symlink(&shard, data.join("again.tfrecord")).unwrap();
    assert_eq!(videos(&inspect(&[&pattern])), 4);
    // A second way into the same directory (not a cycle): searched once.
    std::fs::create_dir(data.join("sub")).unwrap();
    std::os::unix::fs::symlink("../sub", data.join("sub2")).unwrap();
    std::fs::copy(&shard, data.join("sub/copy.tfrecord")).unwrap();
    assert_eq!(videos(&inspect(&[&pattern])), 8, "a copy is another file");
    // A cycle: refused, naming it, at once.
    std::os::unix::fs::symlink("..", data.join("up")).unwrap();
    let t = Instant::now();
    fails_cleanly(&inspect(&[&pattern]), &["symlink cycle", "**"]);
    assert!(t.elapsed() < Duration::from_secs(20));
    std::fs::remove_file(data.join("up")).unwrap();
    // A .list entry with spaces and non-ASCII: the whole line, trimmed.
    let odd = d.join("sp ace é.tfrecord");
    std::fs::copy(&shard, &odd).unwrap();
    let list = d.join("x.list");
    std::fs::write(&list, "  sp ace é.tfrecord  \n\n").unwrap();
    assert_eq!(videos(&inspect(&[list.to_str().unwrap()])), 4);
}

/// Issue #26 (2): size-like config keys are bounded before anything is allocated from them
/// (`DATASET.prefetch: 100000000000` aborted allocating 17.6 TB and left a run directory;
/// 100000000 took 17.7 GB for 4 videos), and a refused run leaves no run directory.
#[test]
fn size_like_config_keys_are_bounded() {
    let d = tempdir("size-keys");
    synth_shards(&d.join("data"), 4, 1, 5, 5);
    let tiny = repo().join("configs/tiny_test.yaml");
    let data = format!("DATASET.train.file_path={}", d.join("data").display());
    for (kv, needle) in [
        (
            "DATASET.prefetch=100000000000",
            "DATASET.prefetch = 100000000000",
        ),
        ("DATASET.prefetch=100000000", "at most 256"),
        ("DATASET.batch_size=100000000", "DATASET.batch_size"),
        ("DATASET.num_workers=100000", "DATASET.num_workers"),
        ("DATASET.shuffle_buffer=1000000", "more than this machine's"),
        ("DATASET.max_frames=10000000", "DATASET.max_frames"),
    ] {
        let run_dir = d.join(format!("run-{}", kv.len()));
        let o = run(&[
            "train",
            "-c",
            tiny.to_str().unwrap(),
            "-o",
            &data,
            "-o",
            kv,
            "--out",
            run_dir.to_str().unwrap(),
        ]);
        fails_cleanly(&o, &[needle]);
        assert!(o.max_rss < 2 << 30, "{kv}: {} bytes", o.max_rss);
        assert!(
            !run_dir.exists(),
            "{kv}: a refused run left {}",
            run_dir.display()
        );
    }
}

/// Issue #26 (13): a file name that is not UTF-8 (legal on Unix; read fine inside a directory)
/// is accepted as an argument too, by every command that takes data paths, and shown lossily
/// in messages instead of being refused by argument parsing (exit 2).
#[test]
fn non_utf8_file_names_are_accepted_as_arguments() {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStrExt;
    let d = tempdir("non-utf8");
    let b = tiny_bundle(&d);
    let mut f = Vec::new();
    for (id, labels) in [("a", vec![1i64]), ("b", vec![2]), ("c", vec![3])] {
        f.extend(frame_video(id, &labels, 4, 4, 90));
    }
    let odd = d.join(OsStr::from_bytes(b"caf\xe9 \xff.tfrecord"));
    std::fs::write(&odd, &f).unwrap();
    let run_os = |args: &[&OsStr]| {
        let o = Command::new(bin())
            .args(args)
            .env("YT8M_THREADS", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            err,
        )
    };
    let os = OsStr::new;
    // inspect: the file is read.
    let (code, out, err) = run_os(&[os("inspect"), os("--json"), odd.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"][0]["records"].as_u64(), Some(3), "{out}");
    // predict: three videos.
    let args = [
        os("predict"),
        os("--model"),
        b.as_os_str(),
        odd.as_os_str(),
        os("--format"),
        os("jsonl"),
    ];
    let (code, out, err) = run_os(&args);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    // evaluate --labels with scores from predict's npz.
    let npz = d.join(OsStr::from_bytes(b"p\xe9.npz"));
    // `--output` is the hidden alias of `--out` (one spelling in help and docs; old scripts run).
    let mut out_flag = OsString::from("--output=");
    out_flag.push(&npz);
    let args = [
        os("predict"),
        os("--model"),
        b.as_os_str(),
        odd.as_os_str(),
        os("--format"),
        os("npz"),
        &out_flag,
    ];
    let (code, _, err) = run_os(&args);
    assert_eq!(code, Some(0), "{err}");
    let args = [
        os("evaluate"),
        os("--scores"),
        npz.as_os_str(),
        os("--labels"),
        odd.as_os_str(),
    ];
    let (code, out, err) = run_os(&args);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("GAP"), "{out}");
    // A missing non-UTF-8 name: exit 1 naming it (lossily), not a parse error's exit 2.
    let gone = d.join(OsStr::from_bytes(b"gone\xe9.tfrecord"));
    let (code, _, err) = run_os(&[os("inspect"), gone.as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("gone\u{fffd}.tfrecord"), "{err}");
}

/// Issue #27: every output path gets its missing parent directories created (as `export` and
/// `synth` always did); `convert --out nodir/x.safetensors` and `predict --out nodir/p.npz`
/// used to fail naming the temporary file (`nodir/.x.safetensors.tmp-877`). A parent that
/// cannot be made is an error naming the output the user chose, never the temporary name.
#[test]
fn outputs_create_missing_parents_and_errors_name_them() {
    let d = tempdir("h-parents");
    let b = tiny_bundle(&d);
    let mut f = Vec::new();
    for (id, labels) in [("a", vec![1i64]), ("b", vec![2])] {
        f.extend(frame_video(id, &labels, 4, 4, 90));
    }
    let shard = d.join("s.tfrecord");
    std::fs::write(&shard, &f).unwrap();
    let (bs, ss) = (b.to_str().unwrap(), shard.to_str().unwrap());
    let npz = d.join("new/deeper/p.npz");
    let o = run(&[
        "predict",
        "--model",
        bs,
        ss,
        "--format",
        "npz",
        "--out",
        npz.to_str().unwrap(),
    ]);
    assert!(o.ok(), "{}", o.stderr);
    assert_eq!(
        yt8m::data::npy::read_npz(&npz).unwrap()[0].1.shape,
        vec![2, 20]
    );
    if shared_present() {
        let st = d.join("new2/x.safetensors");
        let pd = parity("c_recognizer1d.pdparams");
        let o = run(&[
            "convert",
            pd.to_str().unwrap(),
            "--out",
            st.to_str().unwrap(),
        ]);
        assert!(o.ok(), "{}", o.stderr);
        assert!(st.is_file());
    }
    // A regular file where a directory must go: refused naming the chosen output.
    std::fs::write(d.join("blocker"), "x").unwrap();
    let bad = d.join("blocker/p.jsonl");
    let o = run(&["predict", "--model", bs, ss, "--out", bad.to_str().unwrap()]);
    fails_cleanly(&o, &["blocker/p.jsonl", "cannot create its directory"]);
    assert!(!o.stderr.contains(".tmp-"), "{}", o.stderr);
}
