//! Whole networks for the end-to-end tests and the benchmarks, assembled with the plan builder
//! from deterministic synthetic weights (not part of the library: a real model's plan comes from
//! kestrel-nn's exporter). Shared by `tests/end_to_end.rs` and `examples/bench_mbv2.rs`, which
//! includes it with `#[path]`.

pub mod mobilenet_v2;
pub mod synthetic;
