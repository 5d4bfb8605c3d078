//! Build script: compiles the kernel emulator (`csrc/emulate.c`, which includes
//! `src/kernels.cu`) with the host C compiler. No CUDA is needed to build this crate.

fn main() {
    println!("cargo::rerun-if-changed=csrc/emulate.c");
    println!("cargo::rerun-if-changed=src/kernels.cu");
    println!("cargo::rerun-if-changed=build.rs");
    cc::Build::new()
        .file("csrc/emulate.c")
        .flag_if_supported("-std=c11")
        // One rounding per operation, as the kernels are written (no fused multiply-adds).
        .flag_if_supported("-ffp-contract=off")
        .warnings(true)
        .extra_warnings(true)
        .compile("ds_td3_kernel_emulator");
}
