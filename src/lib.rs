//! The library side of the `ds-td3` package: what the binary shares with the package's
//! benchmarks (`benches/`), so that `ds-td3 bench` and the criterion benchmarks time the same
//! workloads.

pub mod workloads;
