//! Build script: with the `mujoco` feature, finds MuJoCo and compiles the C shim against its
//! headers.
//!
//! Search order: `MUJOCO_DIR` (an unpacked MuJoCo release or Python wheel: `include/mujoco/mujoco.h`
//! and a `libmujoco.so*` in `lib/`, `lib64/` or the directory itself), then the system headers in
//! `/usr/include/mujoco` (Debian/Ubuntu `libmujoco-dev`) with `libmujoco.so` on the default linker
//! path. Anything else stops the build with one message saying how to get MuJoCo.
//!
//! Cross builds (`--target` other than the host, e.g. `aarch64-unknown-linux-gnu` from x86-64)
//! use the same order; on the system path they need the target's multiarch library,
//! `/usr/lib/<multiarch>/libmujoco.so` (Debian: `libmujoco-dev:arm64` after `dpkg
//! --add-architecture arm64`; the headers are shared between architectures), which the
//! cross linker finds. `scripts/aarch64-check.sh` sets that up.
//!
//! The library is named to the linker after the shim, so a linker that drops shared libraries
//! nothing before them needs (`--as-needed`) keeps it for the shim's references.

use std::path::{Path, PathBuf};

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

const HOW: &str = "mujoco-env needs MuJoCo (tested with 2.2.2) to build its MuJoCo tasks. Either \
install Debian/Ubuntu's `libmujoco-dev` (`apt-get install libmujoco-dev`, MuJoCo 2.2.2), or set \
MUJOCO_DIR to an unpacked MuJoCo release or wheel directory containing include/mujoco/mujoco.h and \
libmujoco.so* (in lib/ or at its top), or build without MuJoCo: `cargo build --no-default-features` \
(only Pendulum-v1 is then available).";

/// Finds a MuJoCo shared library in `dir`: an unversioned `libmujoco.so` first, else the first
/// versioned `libmujoco.so.*`.
fn find_lib(dir: &Path) -> Option<PathBuf> {
    let plain = dir.join("libmujoco.so");
    if plain.is_file() {
        return Some(plain);
    }
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libmujoco.so."))
        })
        .collect();
    versioned.sort();
    versioned.into_iter().next()
}

fn main() {
    println!("cargo::rerun-if-env-changed=MUJOCO_DIR");
    println!("cargo::rerun-if-changed=csrc/shim.c");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_MUJOCO").is_none() {
        return;
    }

    let include: PathBuf;
    // `rustc-link-*` directives for MuJoCo itself, printed after the shim is compiled (cc names
    // the shim's archive to the linker then; MuJoCo must come after it).
    let mut link: Vec<String> = Vec::new();
    if let Some(dir) = std::env::var_os("MUJOCO_DIR") {
        let dir = PathBuf::from(dir);
        include = dir.join("include");
        if !include.join("mujoco/mujoco.h").is_file() {
            fail(&format!(
                "MUJOCO_DIR={} has no include/mujoco/mujoco.h. {HOW}",
                dir.display()
            ));
        }
        let lib = [dir.join("lib"), dir.join("lib64"), dir.clone()]
            .iter()
            .find_map(|d| find_lib(d))
            .unwrap_or_else(|| {
                fail(&format!(
                    "MUJOCO_DIR={} has no libmujoco.so* in lib/, lib64/ or at its top. {HOW}",
                    dir.display()
                ))
            });
        let libdir = lib.parent().unwrap_or(&dir).to_path_buf();
        let file = lib
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("libmujoco.so")
            .to_string();
        link.push(format!(
            "cargo::rustc-link-search=native={}",
            libdir.display()
        ));
        if file == "libmujoco.so" {
            link.push("cargo::rustc-link-lib=dylib=mujoco".into());
        } else {
            // Wheels ship only a versioned file name: link it verbatim.
            link.push(format!("cargo::rustc-link-lib=dylib:+verbatim={file}"));
        }
        println!(
            "cargo::warning=mujoco-env: using MuJoCo from {} (at run time the loader must find {}: \
             set LD_LIBRARY_PATH={} if it is not on the default path)",
            dir.display(),
            file,
            libdir.display()
        );
    } else if Path::new("/usr/include/mujoco/mujoco.h").is_file() {
        include = PathBuf::from("/usr/include");
        if let Some(libdir) = cross_multiarch_dir() {
            if !libdir.join("libmujoco.so").is_file() {
                fail(&format!(
                    "cross build for {}: {}/libmujoco.so does not exist. Install the target's \
                     MuJoCo (Debian: `dpkg --add-architecture arm64 && apt-get update && apt-get \
                     install libmujoco-dev:arm64` for aarch64; scripts/aarch64-check.sh does it), \
                     or set MUJOCO_DIR to a MuJoCo built for the target. {HOW}",
                    env("TARGET"),
                    libdir.display()
                ));
            }
            link.push(format!(
                "cargo::rustc-link-search=native={}",
                libdir.display()
            ));
        }
        link.push("cargo::rustc-link-lib=dylib=mujoco".into());
    } else {
        fail(&format!(
            "MuJoCo not found (MUJOCO_DIR is unset and /usr/include/mujoco/mujoco.h does not exist). {HOW}"
        ));
    }

    cc::Build::new()
        .file("csrc/shim.c")
        .include(&include)
        .opt_level(2)
        .warnings(true)
        .compile("mujoco_env_shim");
    for line in link {
        println!("{line}");
    }
}

/// A build-script environment variable Cargo always sets.
fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// For a cross build (target ≠ host) to a Linux GNU target, the target's Debian multiarch
/// library directory (`aarch64-unknown-linux-gnu` → `/usr/lib/aarch64-linux-gnu`); `None` for a
/// native build or another kind of target.
fn cross_multiarch_dir() -> Option<PathBuf> {
    let (target, host) = (env("TARGET"), env("HOST"));
    if target == host {
        return None;
    }
    let mut parts = target.split('-');
    let arch = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    // `<arch>-<vendor>-linux-gnu…` → `<arch>-linux-gnu…`.
    match rest.as_slice() {
        [_vendor, "linux", abi] if abi.starts_with("gnu") => {
            Some(PathBuf::from(format!("/usr/lib/{arch}-linux-{abi}")))
        }
        _ => None,
    }
}
