#!/usr/bin/env bash
# The aarch64 check, in one command on an x86-64 Debian machine (as root, or with sudo for the
# installs): cross-builds the whole workspace, MuJoCo included, for aarch64-unknown-linux-gnu
# and runs it under qemu user-mode emulation. Times under emulation mean nothing; results do.
#
#   scripts/aarch64-check.sh          sparse-core's tests (NEON kernels against the dense f64
#                                     reference and the portable kernels), mujoco-env's tests
#                                     (the golden replays included), a short DS-TD3 run on
#                                     Hopper-v3 with the aarch64 ds-td3, set-evolve's,
#                                     sparse-cuda's and ds-td3's unit tests
#   AARCH64_CHECK_ALL=1 scripts/aarch64-check.sh
#                                     and td3's tests (about 4 minutes more under emulation)
#
# Installs what is missing, each step skipped when already done: the Rust target, the arm64
# dpkg architecture, Debian's gcc-aarch64-linux-gnu and qemu-user-static, and MuJoCo for arm64
# (libmujoco-dev:arm64, which is Multi-Arch: same and installs beside the amd64 one). Should apt
# want to remove a package to install it (or with AARCH64_CHECK_EXTRACT=1), MuJoCo and its
# arm64 libraries are instead downloaded and unpacked into target/aarch64-sysroot, which the
# build uses through MUJOCO_DIR and qemu through LD_LIBRARY_PATH; nothing installed changes.
#
# Prints a summary; exits non-zero if any step failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET=aarch64-unknown-linux-gnu
MULTIARCH=aarch64-linux-gnu
OUT=target/aarch64-check
SYSROOT="$ROOT/target/aarch64-sysroot"
START=$(date +%s)
mkdir -p "$OUT"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

say() { printf '== %s\n' "$*"; }

# --- 1. What the cross build needs -------------------------------------------------------------
if ! rustup target list --installed | grep -qx "$TARGET"; then
    say "rustup target add $TARGET"
    rustup target add "$TARGET"
fi
apt_updated=0
apt_update() {
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        $SUDO apt-get update -qq
        apt_updated=1
    fi
}
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "dpkg --add-architecture arm64"
    $SUDO dpkg --add-architecture arm64
    apt_update
fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
installed gcc-aarch64-linux-gnu || missing+=(gcc-aarch64-linux-gnu)
installed qemu-user-static || missing+=(qemu-user-static)
if [ ${#missing[@]} -gt 0 ]; then
    apt_update
    say "apt-get install ${missing[*]}"
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# MuJoCo for arm64: installed beside the amd64 one when apt can do that without removing
# anything, else unpacked into $SYSROOT.
extract=${AARCH64_CHECK_EXTRACT:-0}
if [ "$extract" != 1 ] && ! installed libmujoco-dev:arm64; then
    apt_update
    plan=$(apt-get install -s libmujoco-dev:arm64 2>&1) || true
    if grep -q '^Inst libmujoco-dev:arm64' <<<"$plan" && ! grep -q '^Remv' <<<"$plan"; then
        say "apt-get install libmujoco-dev:arm64"
        $SUDO apt-get install -y -qq libmujoco-dev:arm64 >/dev/null
    else
        echo "apt cannot install libmujoco-dev:arm64 beside what is installed:"
        grep -E '^(Remv|E:)' <<<"$plan" | head -20 || true
        extract=1
    fi
fi
if [ "$extract" = 1 ]; then
    # MuJoCo and the arm64 libraries it needs (libstdc++ and libgcc come with the cross
    # compiler, in /usr/aarch64-linux-gnu).
    pkgs=(libmujoco-dev libmujoco2.2.2 libccd2 liblodepng0 libqhull-r8.0 libtinyxml2-9)
    if [ ! -f "$SYSROOT/.complete" ]; then
        apt_update
        say "unpacking ${pkgs[*]} (arm64) into $SYSROOT"
        rm -rf "$SYSROOT" && mkdir -p "$SYSROOT/debs"
        (cd "$SYSROOT/debs" && apt-get download "${pkgs[@]/%/:arm64}" >/dev/null)
        for deb in "$SYSROOT"/debs/*.deb; do dpkg -x "$deb" "$SYSROOT"; done
        # The layout MUJOCO_DIR expects: include/mujoco/mujoco.h and lib/libmujoco.so.
        mkdir -p "$SYSROOT/mujoco"
        ln -sfn ../usr/include "$SYSROOT/mujoco/include"
        ln -sfn "../usr/lib/$MULTIARCH" "$SYSROOT/mujoco/lib"
        touch "$SYSROOT/.complete"
    fi
    export MUJOCO_DIR="$SYSROOT/mujoco"
    # The linker resolves libmujoco's own dependencies there; so does the emulated loader.
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,$SYSROOT/usr/lib/$MULTIARCH"
    guest_libs="$SYSROOT/usr/lib/$MULTIARCH"
    qemu_prefix=/usr/$MULTIARCH
else
    guest_libs=""
    qemu_prefix=/
fi

# --- 2. Cross build and emulated runs ------------------------------------------------------------
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$MULTIARCH-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $qemu_prefix"
# The guest's environment: x86-64 libraries on LD_LIBRARY_PATH mean nothing to it, and the
# x86-64 NVRTC that .ci/run requires does not exist for it (the PTX test skips visibly).
unset DS_TD3_REQUIRE_NVRTC DS_TD3_KERNELS
if [ -n "$guest_libs" ]; then
    export LD_LIBRARY_PATH="$guest_libs"
else
    unset LD_LIBRARY_PATH
fi
qemu() { qemu-aarch64-static -L "$qemu_prefix" "$@"; }
CARGO=(cargo)
TEST_ARGS=(--release --target "$TARGET")
# Every test binary runs even when an earlier one failed, so the counts are complete.
RUN_ARGS=(--no-fail-fast "${TEST_ARGS[@]}")

results=()
failed=0
# step NAME COMMAND...: runs COMMAND with its output in $OUT/NAME.log (and on the terminal),
# records pass or fail and, for test runs, the counts the harness printed.
step() {
    local name=$1 log="$OUT/$1.log" t0 rc counts
    shift
    say "$name: $*"
    t0=$(date +%s)
    set +e
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    counts=$(awk '/^test result:/ { p += $4; f += $6; i += $8; n++ }
        END { if (n) printf "%d passed, %d failed, %d ignored in %d test binaries", p, f, i, n }' "$log")
    local status="ok"
    if [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc)"
        failed=1
    fi
    results+=("$(printf '%-22s %-16s %5ss  %s' "$name" "$status" $(($(date +%s) - t0)) "$counts")")
}

step build "${CARGO[@]}" test --workspace "${TEST_ARGS[@]}" --no-run
step build-ds-td3 "${CARGO[@]}" build -p ds-td3 "${TEST_ARGS[@]}"
BIN="target/$TARGET/release/ds-td3"

# The binaries are aarch64 and run only through qemu (no binfmt registration needed).
arch_check() {
    file -L "$BIN" 2>/dev/null | grep -q 'ARM aarch64' || { echo "$BIN is not an aarch64 ELF"; return 1; }
    # It runs, and its `bench --help` names the NEON kernels (the test of the implementation
    # choice asserts that the best implementation on AArch64 is neon).
    local help
    help=$(qemu "$BIN" bench --help)
    grep -q neon <<<"$help"
    echo "$BIN: $(file -bL "$BIN" | cut -d, -f1-2)"
}
step aarch64-binary arch_check

# sparse-core: every kernel implementation the (emulated) CPU runs, i.e. portable and neon,
# against the dense f64 reference and against each other; the skip lines name avx2 and avx512.
step sparse-core "${CARGO[@]}" test -p sparse-core "${RUN_ARGS[@]}"
# (The harness's lines and the skip lines, written past its capture, can interleave: only
# whole markers are looked for.)
neon_check() {
    local log="$OUT/sparse-core.log" t
    grep -q 'SKIPPED .* on avx512: this CPU cannot run it' "$log" || return 1
    if grep -q 'SKIPPED .* on neon' "$log"; then echo "the NEON kernels were skipped"; return 1; fi
    if grep -q 'test result: FAILED' "$log"; then echo "sparse-core failed"; return 1; fi
    # The tests that run every available implementation, and the one that asserts the best
    # implementation on AArch64 is neon.
    for t in implementation_choice_is_validated implementations_agree_with_portable \
        sparse_kernels_match_dense_reference random_shapes_match_dense_reference \
        dense_kernels_match_dense_reference load_bound_is_measured_for_simd_kernels_only; do
        grep -q "^test $t \.\.\. " "$log" || { echo "$t did not run"; return 1; }
    done
    echo "NEON kernels tested (avx2 and avx512 skipped: this CPU cannot run them)"
}
step neon-kernels-tested neon_check

# mujoco-env: the golden replays (bit-exact on x86-64; on aarch64, whose Debian MuJoCo fuses
# multiply-adds, every value within 1e-6: see crates/mujoco-env/tests/golden.rs) and the task tests.
step mujoco-env "${CARGO[@]}" test -p mujoco-env "${RUN_ARGS[@]}"

# A short DS-TD3 run on Hopper-v3 (200 training iterations, two topology evolutions: about a
# minute of emulation, where a training iteration costs some 0.25 s), then its output checked:
# every evaluation present and finite, the run summary written.
RUN="$OUT/hopper"
hopper() {
    qemu "$BIN" train --env Hopper-v3 --steps 1200 --start-steps 1000 --eval-every 200 \
        --eval-episodes 2 --evolution-period 100 --topology-freeze 0 --out "$RUN" --force
}
step hopper-train hopper
hopper_check() {
    python3 - "$RUN" <<'EOF'
import csv, json, math, sys
run = sys.argv[1]
rows = list(csv.DictReader(open(f"{run}/evaluations.csv")))
steps = [int(r["step"]) for r in rows]
assert steps == list(range(0, 1201, 200)), steps
for r in rows:
    m, s = float(r["mean"]), float(r["std"])
    assert math.isfinite(m) and math.isfinite(s) and -100 < m < 5000, r
    assert int(r["live_connections"]) > 0 and int(r["flops"]) > 0, r
summary = json.load(open(f"{run}/summary.json"))
print("evaluations:", [(int(r["step"]), round(float(r["mean"]), 2)) for r in rows])
print("summary keys:", sorted(summary))
EOF
}
step hopper-output hopper_check

# The other tests that run under qemu in seconds: set-evolve, sparse-cuda (its host emulator of
# the GPU kernels; the PTX test skips without NVRTC) and ds-td3's unit tests. Not ds-td3's
# tests/cli.rs, crash.rs and results.rs: they start the ds-td3 binary themselves, which for an
# aarch64 binary needs qemu registered with the host kernel's binfmt_misc (a setting of the
# whole machine, which this script leaves alone); the Hopper run above covers the binary.
step set-evolve-sparse-cuda "${CARGO[@]}" test -p set-evolve -p sparse-cuda "${RUN_ARGS[@]}"
step ds-td3-unit "${CARGO[@]}" test -p ds-td3 --bins --lib "${RUN_ARGS[@]}"
if [ "${AARCH64_CHECK_ALL:-0}" = 1 ]; then
    # td3's tests: about 4 more minutes of emulation (threads.rs alone about 2), without the
    # one that trains Pendulum for 15k steps (hours under emulation).
    step td3 "${CARGO[@]}" test -p td3 "${RUN_ARGS[@]}" -- --skip td3_learns_pendulum_within_15k_steps
fi

# --- 3. Summary ------------------------------------------------------------------------------------
echo
echo "aarch64 check ($TARGET under $(qemu-aarch64-static --version | head -1)), $(($(date +%s) - START)) s:"
printf '  %s\n' "${results[@]}"
echo "  logs: $OUT/*.log"
if [ "$failed" -ne 0 ]; then
    echo "aarch64 check FAILED"
    exit 1
fi
echo "aarch64 check passed"
