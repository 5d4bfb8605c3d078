//! Every kernel compiles to PTX with NVRTC (no GPU needed). CI installs PyPI's
//! nvidia-cuda-nvrtc 13.0 and sets `DS_TD3_REQUIRE_NVRTC=1`, so a kernel that does not compile,
//! or a missing NVRTC, fails there; elsewhere a missing NVRTC skips the test with a message.

use sparse_cuda::kernels::{KERNEL_NAMES, compile, nvrtc_available};

#[path = "../../../tests/support/skip.rs"]
mod skip;

#[test]
fn every_kernel_compiles_to_ptx() {
    if !nvrtc_available() {
        let why = "NVRTC (libnvrtc.so.13) not found; `pip install nvidia-cuda-nvrtc==13.0.*` and \
                   put its nvidia/cu13/lib on LD_LIBRARY_PATH";
        assert!(
            !skip::required(skip::REQUIRE_NVRTC),
            "{}=1 but {why} (LD_LIBRARY_PATH={:?})",
            skip::REQUIRE_NVRTC,
            std::env::var_os("LD_LIBRARY_PATH")
        );
        skip::skip("PTX compilation", why);
        return;
    }
    for arch in [None, Some("compute_90")] {
        let ptx = compile(arch)
            .unwrap_or_else(|e| panic!("{arch:?}: {e}"))
            .to_src();
        for name in KERNEL_NAMES {
            assert!(
                ptx.contains(&format!(".entry {name}(")),
                "{arch:?}: kernel {name} missing from the PTX"
            );
        }
        eprintln!(
            "PTX for {arch:?}: {} kernels, {} bytes",
            KERNEL_NAMES.len(),
            ptx.len()
        );
    }
}
