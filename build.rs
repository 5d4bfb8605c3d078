//! Passes the optimisation level of the `ds-td3` binary's own code to it (`DS_TD3_OPT_LEVEL`),
//! so that an unoptimised build can say so at start-up.

fn main() {
    let level = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo::rustc-env=DS_TD3_OPT_LEVEL={level}");
    println!("cargo::rerun-if-changed=build.rs");
}
