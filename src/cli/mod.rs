//! The binary's side of yt8m: each verb's arguments (clap) and its call into the library,
//! grouped as the verbs are, plus the benchmarks and the demo, which print tables and
//! narration and spawn Python or this program, so they stay out of the library.

pub(crate) mod bench;
pub(crate) mod bench_cmd;
pub(crate) mod bench_data;
pub(crate) mod bench_predict;
pub(crate) mod bench_serve;
pub(crate) mod data;
pub(crate) mod demo;
pub(crate) mod model;
pub(crate) mod serving;
pub(crate) mod tools;
