//! `config` and `info`: the bundled configs and what this machine and build offer.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// The bundled configs, one per line: name and what it is.
    #[command(after_help = "Example:\n  yt8m config list")]
    List,
    /// Print a bundled config's YAML (or write it with --out), to edit and pass with -c.
    #[command(
        after_help = "Examples:\n  yt8m config show attention_lstm_youtube8m > my.yaml\n  yt8m config show moe_video --out configs/my_moe.yaml\n\nData paths in the bundled configs point where the repository's demo and tests put data\n(relative to the file); set your own in the file or with -o DATASET.train.file_path=..."
    )]
    Show {
        /// Config name, as `yt8m config list` prints it.
        name: String,
        /// Write the YAML here (parents created; an existing file is replaced whole) instead
        /// of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub(crate) fn config_cmd(c: ConfigCmd) -> Result<()> {
    match c {
        ConfigCmd::List => {
            let width = yt8m::configs::BUNDLED
                .iter()
                .map(|b| b.name.len())
                .max()
                .unwrap_or(0);
            for b in yt8m::configs::BUNDLED {
                println!("{:<width$}  {}", b.name, b.summary);
            }
        }
        ConfigCmd::Show { name, out } => {
            let b = yt8m::configs::find(&name)?;
            match out {
                Some(p) => {
                    yt8m::runtime::write_atomic(&p, b.yaml.as_bytes())?;
                    eprintln!("wrote {} ({}) to {}", b.name, b.summary, p.display());
                }
                None => print!("{}", b.yaml),
            }
        }
    }
    Ok(())
}

pub(crate) fn info(json: bool) -> Result<()> {
    let i = yt8m::runtime::runtime_info();
    if json {
        println!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(());
    }
    let or = |o: &Option<String>, none: &str| o.clone().unwrap_or_else(|| none.to_string());
    println!(
        "yt8m {} (features: {})",
        i.version,
        if i.features.is_empty() {
            "none".to_string()
        } else {
            i.features.join(", ")
        }
    );
    println!("libtorch loaded:     {}", or(&i.libtorch_dir, "unknown"));
    println!(
        "libtorch linked:     {}",
        i.libtorch_built_against.unwrap_or("unknown")
    );
    println!("CUDA backend loaded: {}", i.cuda_backend_loaded);
    println!(
        "CUDA available:      {} ({} GPU(s), cuDNN {})",
        i.cuda_available, i.cuda_devices, i.cudnn_available
    );
    println!(
        "CPU cores owned:     {} (libtorch threads {})",
        i.cores, i.torch_threads
    );
    println!(
        "NCCL:                {}",
        or(&i.nccl, "not built (feature nccl)")
    );
    println!("precision auto:      {}", i.precision_auto);
    println!("ffmpeg (extract):    {}", i.ffmpeg);
    Ok(())
}
