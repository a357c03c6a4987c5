//! Data-parallel training over MPI, two processes on one machine (loopback).
#![cfg(feature = "mpi")]

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use tch::Tensor;
use yt8m::data::tfrecord::{RecordReader, RecordWriter};

/// `mpirun` on loopback only, as root, allowing more ranks than cores.
fn mpirun_base() -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "--mca",
        "btl",
        "self,tcp",
        "--mca",
        "btl_tcp_if_include",
        "lo",
    ]);
    c.env("YT8M_THREADS", "1");
    c
}

fn mpirun(np: &[(usize, Vec<String>)]) -> std::process::Output {
    let mut c = mpirun_base();
    for (i, (n, args)) in np.iter().enumerate() {
        if i > 0 {
            c.arg(":");
        }
        c.arg("-np").arg(n.to_string()).arg(bin()).args(args);
    }
    c.output()
        .expect("mpirun not found: apt-get install openmpi-bin libopenmpi-dev")
}

fn records(p: &Path) -> Vec<Vec<u8>> {
    let mut r = RecordReader::open(p).unwrap();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while r.next_into(&mut buf).unwrap().is_some() {
        out.push(buf.clone());
    }
    out
}

#[test]
fn two_workers_equal_one_process_with_the_global_batch() {
    let d = tempdir("dp");
    let (b, k) = (4usize, 3usize);
    synth_shards(&d.join("shards"), 2 * b * k, 2, 8, 30);
    // The single-process file interleaves the two shards batch by batch, so its global batch k
    // holds exactly worker 0's and worker 1's batch k.
    let s0 = records(&d.join("shards/train0000.tfrecord"));
    let s1 = records(&d.join("shards/train0001.tfrecord"));
    std::fs::create_dir_all(d.join("all")).unwrap();
    let mut w = RecordWriter::create(d.join("all/all.tfrecord")).unwrap();
    for i in 0..k {
        for r in s0[i * b..(i + 1) * b].iter().chain(&s1[i * b..(i + 1) * b]) {
            w.write(r).unwrap();
        }
    }
    w.finish().unwrap();

    let single = d.join("single");
    let args = tiny_train_args(&single, &d.join("all"), &exact_overrides(2, 2 * b));
    let o = Command::new(bin())
        .args(&args)
        .env("YT8M_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let dist = d.join("dist");
    let args = tiny_train_args(&dist, &d.join("shards"), &exact_overrides(2, b));
    let o = mpirun(&[(2, args)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("2 workers"), "{err}");

    let mut a =
        Tensor::read_safetensors(single.join("checkpoints/epoch_00002/model.safetensors")).unwrap();
    let mut c =
        Tensor::read_safetensors(dist.join("checkpoints/epoch_00002/model.safetensors")).unwrap();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    c.sort_by(|x, y| x.0.cmp(&y.0));
    let mut max = 0f64;
    let mut moved = 0f64;
    let init = {
        // distance travelled, to show the comparison is not trivial
        let mut v =
            Tensor::read_safetensors(single.join("checkpoints/epoch_00001/model.safetensors"))
                .unwrap();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    for (((na, ta), (nc, tc)), (_, ti)) in a.iter().zip(&c).zip(&init) {
        assert_eq!(na, nc);
        if na.starts_with("att_fc") && na.ends_with(".bias") {
            continue;
        }
        max = max.max((ta - tc).abs().max().double_value(&[]));
        moved = moved.max((ta - ti).abs().max().double_value(&[]));
    }
    println!(
        "after {} steps: max |single - 2 workers| = {max:e} (weights moved up to {moved:e} in the last epoch)",
        2 * k
    );
    assert!(moved > 1e-3);
    assert!(max < 1e-4, "weights differ by {max}");
}

#[test]
fn workers_with_different_configs_refuse_naming_the_key() {
    let d = tempdir("dpcfg");
    synth_shards(&d.join("s"), 16, 2, 0, 10);
    let base = |epochs: &str| {
        tiny_train_args(
            &d.join("r"),
            &d.join("s"),
            &["-o".into(), format!("epochs={epochs}")],
        )
    };
    let o = mpirun(&[(1, base("2")), (1, base("3"))]);
    let err = String::from_utf8_lossy(&o.stderr);
    println!("{err}");
    assert!(!o.status.success());
    assert!(
        err.contains("epochs") && err.contains("differs from rank 0"),
        "{err}"
    );
}

#[test]
fn a_dead_worker_stops_the_others() {
    let d = tempdir("dpkill");
    synth_shards(&d.join("s"), 64, 2, 0, 20);
    let run = d.join("r");
    let mut c = mpirun_base();
    c.args(["-np", "2"]).arg(bin());
    c.args(tiny_train_args(
        &run,
        &d.join("s"),
        &["-o".into(), "epochs=100000".into()],
    ));
    c.stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !run.join("checkpoints/latest").exists() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Kill one worker (not mpirun) with SIGKILL.
    let pids = String::from_utf8(
        Command::new("pgrep")
            .args(["-P", &child.id().to_string()])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let victim = pids.lines().last().expect("worker pid").trim().to_string();
    Command::new("kill").args(["-9", &victim]).status().unwrap();
    let t1 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t1.elapsed().as_secs() < 60, "the surviving worker hangs");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    println!(
        "mpirun exited {status:?} {:.1} s after the kill",
        t1.elapsed().as_secs_f64()
    );
    assert!(!status.success());
    // The run stays resumable from its last checkpoint.
    assert!(run.join("checkpoints/latest").exists());
}

#[test]
fn distributed_resume_continues_from_rank_0s_checkpoint() {
    let d = tempdir("dpresume");
    synth_shards(&d.join("s"), 32, 2, 2, 12);
    let args = |run: &Path, epochs: usize, resume: bool| -> Vec<String> {
        let mut a = tiny_train_args(run, &d.join("s"), &exact_overrides(epochs, 4));
        if resume {
            a.push("--resume".into());
        }
        a
    };
    // Straight 3 epochs vs 1 epoch then --resume to 3, both with 2 workers.
    let straight = d.join("straight");
    assert!(mpirun(&[(2, args(&straight, 3, false))]).status.success());
    let resumed = d.join("resumed");
    assert!(mpirun(&[(2, args(&resumed, 1, false))]).status.success());
    let o = mpirun(&[(2, args(&resumed, 3, true))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut a =
        Tensor::read_safetensors(straight.join("checkpoints/epoch_00003/model.safetensors"))
            .unwrap();
    let mut b = Tensor::read_safetensors(resumed.join("checkpoints/epoch_00003/model.safetensors"))
        .unwrap();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    let max = a
        .iter()
        .zip(&b)
        .map(|((_, x), (_, y))| (x - y).abs().max().double_value(&[]))
        .fold(0f64, f64::max);
    println!("2 workers, straight vs resumed after epoch 1: max diff {max:e}");
    assert!(max < 1e-6, "{max}");
}

/// An unreachable host with the documented ssh connect timeout (docs/distributed.md): mpirun
/// stops with a message naming the problem instead of waiting for TCP's timeout.
#[test]
fn an_unreachable_host_fails_fast_with_the_documented_setting() {
    let d = tempdir("unreach");
    synth_shards(&d.join("s"), 8, 2, 0, 5);
    let args = tiny_train_args(&d.join("run"), &d.join("s"), &[]);
    let t = std::time::Instant::now();
    let o = Command::new("mpirun")
        .args(["--allow-run-as-root", "--mca", "plm_rsh_args"])
        .arg("-o ConnectTimeout=3 -o BatchMode=yes")
        // TEST-NET-2 (RFC 5737): documentation addresses, never routed.
        .args(["-H", "localhost,198.51.100.77", "-np", "2"])
        .arg(bin())
        .args(&args)
        .output()
        .unwrap();
    let el = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&o.stderr);
    println!("{el:.1} s: {err}");
    assert!(!o.status.success());
    assert!(el < 60.0, "mpirun took {el:.0} s");
    assert!(
        err.contains("198.51.100.77") || err.contains("unable to reliably start"),
        "{err}"
    );
}

/// Runs mpirun with a deadline; a hang is a test failure (the child is killed).
fn mpirun_within(args: Vec<String>, np: usize, secs: u64) -> (std::process::ExitStatus, String) {
    let mut c = mpirun_base();
    c.args(["-np", &np.to_string()]).arg(bin()).args(args);
    c.stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed().as_secs() > secs {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpirun -np {np} still running after {secs} s: it hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    (status, reader.join().unwrap())
}

#[test]
fn fewer_shards_than_workers_fails_at_once_naming_the_counts() {
    let d = tempdir("dpfew");
    synth_shards(&d.join("s"), 16, 1, 0, 10);
    let t0 = std::time::Instant::now();
    let (status, err) = mpirun_within(tiny_train_args(&d.join("r"), &d.join("s"), &[]), 2, 60);
    println!("{err}");
    assert!(!status.success());
    assert!(
        err.contains("2 workers but only 1 training shard") && err.contains("-np 1"),
        "{err}"
    );
    println!("failed after {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn an_error_on_rank_0_only_stops_every_worker() {
    // A lock held on the run directory fails rank 0 alone (the others never touch it): before,
    // rank 1 waited forever in the first collective.
    let d = tempdir("dplock");
    synth_shards(&d.join("s"), 16, 2, 0, 10);
    let run = d.join("r");
    std::fs::create_dir_all(&run).unwrap();
    let _held = yt8m::checkpoint::RunLock::acquire(&run).unwrap();
    let (status, err) = mpirun_within(tiny_train_args(&run, &d.join("s"), &[]), 2, 60);
    println!("{err}");
    assert!(!status.success());
    assert!(err.contains("in use by another training"), "{err}");
}
