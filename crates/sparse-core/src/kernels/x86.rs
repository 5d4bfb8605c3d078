//! x86-64 SIMD sparse kernels: AVX-512 and AVX2+FMA, chosen at run time by [`super`].
//!
//! Both instruction sets expand the kernel body shared with NEON (the `simd_kernels!` macro of
//! [`super::simd`]) over the vector helpers each submodule defines for its register width; every
//! function carries `#[target_feature]`, so nothing here runs on a CPU without the features (the
//! dispatcher checks with `is_x86_feature_detected!`).
//!
//! What bounds these kernels on the AVX-512 machine they were tuned on is not the FMA units but
//! the load ports and the L1 cache: every vector product of a connection loads one vector of an
//! input row, and each connection also loads its index and value. Measured there (a Sapphire
//! Rapids-class Xeon at about 3.4 GHz under AVX-512 load): two independent 512-bit FMAs a cycle
//! from registers, but only about 1.2 a cycle when each takes its operand from L1 (the `stream`
//! probe behind [`super::load_bound`]: some 130 GFLOPS, against 110–155 for matrixmultiply's
//! register-blocked sgemm). Tried there without gain: base-plus-displacement instead of indexed
//! addresses, rows visited in order of segment length (fewer mispredicted loop exits, but the
//! index and value reads lose their sequential order), and indices read four to a 64-bit load.
//! So:
//! - activations are feature-major with 64-byte aligned rows (see [`crate::Activations`]);
//! - the batch is cut into tiles of up to 8 vectors (AVX-512: 128 floats, so TD3's batch of 100
//!   is one tile and a connection's index and value are loaded once for 7 vector products;
//!   AVX2: 56 floats, the most that keeps both accumulator sets in its 16 registers), split
//!   evenly: 100 lanes on AVX2 are two tiles of 7 and 6 vectors, not 4 + 4 + 4 + 1 (measured
//!   with `ds-td3 bench --kernels avx2`: 8–20% faster than 32-float tiles; 64 spilled);
//! - within a tile, the inputs are taken in blocks of [`crate::csr::Segments::BLOCK`] rows and
//!   every output row takes its connections from one block before the next block starts, so the
//!   block's input rows (64 × 448 bytes at batch 100) stay in L1 instead of streaming from L2
//!   for every output row. Measured on the 256×256 layer at density 0.5, batch 100: unblocked
//!   64-float tiles reached 80 GFLOPS (forward) and 59 (weight gradient); larger unblocked tiles
//!   were slower still (the inputs spill from L1);
//! - connections are unrolled twice with two independent accumulator sets;
//! - the last, partial vector of a tile is stored masked but loaded whole from input rows
//!   (padded to whole vectors), which at batch 100 made backward-data and the weight gradient
//!   of the 256×256 layer at density 0.5 some 5–8% faster than masked loads (see
//!   [`super::simd`]).
//!
//! The two kernels (`spmm` for forward and backward-data, `sddmm` for the weight and bias
//! gradients) are described in [`super::simd`].

/// AVX-512F kernels (16 lanes).
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    type V = __m512;
    type Mask = __mmask16;
    const W: usize = 16;
    /// A tile of 128 floats (8 vectors): TD3's batch of 100 in one tile, so each connection
    /// costs one index and value load for 7 vector products.
    const TILE: usize = 128;

    /// Whether every bit of `v` is zero (all lanes `+0.0`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn is_zero(v: V) -> bool {
        let i = _mm512_castps_si512(v);
        _mm512_test_epi32_mask(i, i) == 0
    }

    /// `max(v, 0)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn max0(v: V) -> V {
        _mm512_max_ps(v, _mm512_setzero_ps())
    }

    /// `h > 0 ? v : 0`, lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn keep_pos(v: V, h: V) -> V {
        _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(h, _mm512_setzero_ps()), v)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> V {
        _mm512_setzero_ps()
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(v: f32) -> V {
        _mm512_set1_ps(v)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: V, b: V) -> V {
        _mm512_add_ps(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm512_fmadd_ps(a, b, c)
    }

    /// `c + a·b` on the lanes of `m`, `c` elsewhere.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fmam(a: V, b: V, c: V, m: Mask) -> V {
        _mm512_mask3_fmadd_ps(a, b, c, m)
    }

    /// The mask of the first `n` lanes (`1 ≤ n ≤ 16`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mask(n: usize) -> Mask {
        ((1u32 << n) - 1) as Mask
    }

    /// # Safety
    /// 16 floats at `p` must be readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller guarantees 16 readable floats.
        unsafe { _mm512_loadu_ps(p) }
    }

    /// # Safety
    /// The lanes of `m` at `p` must be readable (masked-off lanes are not touched).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn loadm(p: *const f32, m: Mask) -> V {
        // SAFETY: the caller guarantees the masked lanes are readable; AVX-512 suppresses
        // faults on masked-off lanes.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    /// # Safety
    /// 16 floats at `p` must be writable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the caller guarantees 16 writable floats.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    /// # Safety
    /// The lanes of `m` at `p` must be writable (masked-off lanes are not touched).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn storem(p: *mut f32, m: Mask, v: V) {
        // SAFETY: the caller guarantees the masked lanes are writable.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn hsum(v: V) -> f32 {
        _mm512_reduce_add_ps(v)
    }

    /// Horizontal sums of two vectors, sharing the reduction steps.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn hsum2(a: V, b: V) -> (f32, f32) {
        // 128-bit blocks: [a0 a1 b0 b1] + [a2 a3 b2 b3] = [a02 a13 b02 b13].
        let s = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        );
        // Swap neighbouring blocks and add: [A A B B], A and B each one block of partial sums.
        let s = _mm512_add_ps(s, _mm512_shuffle_f32x4::<0b10_11_00_01>(s, s));
        // Within each block: fold 64-bit halves, then neighbouring lanes.
        let s = _mm512_add_ps(s, _mm512_permute_ps::<0b01_00_11_10>(s));
        let s = _mm512_add_ps(s, _mm512_permute_ps::<0b10_11_00_01>(s));
        (
            _mm512_cvtss_f32(s),
            _mm_cvtss_f32(_mm512_extractf32x4_ps::<2>(s)),
        )
    }

    /// Adds (or, unless `accumulate`, stores) the horizontal sum of each of the 8 vectors `s`
    /// at the matching one of the 8 floats at `g`, by a transposing reduction (three folding
    /// levels shared across the vectors).
    ///
    /// # Safety
    /// 8 floats at `g` must be readable and writable.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn acc8(g: *mut f32, s: [V; 8], accumulate: bool) {
        // Level 1, per pair (a, b): 128-bit blocks [a0+a2, a1+a3, b0+b2, b1+b3].
        let fold = |a: V, b: V| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        };
        let (ab, cd, ef, gh) = (
            fold(s[0], s[1]),
            fold(s[2], s[3]),
            fold(s[4], s[5]),
            fold(s[6], s[7]),
        );
        // Level 2: block i of the result holds connection i's 4 partial sums.
        let join = |p: V, q: V| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(p, q),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(p, q),
            )
        };
        let (abcd, efgh) = (join(ab, cd), join(ef, gh));
        // Level 3: within each block, lanes 0 and 1 become the totals of connections i and i + 4.
        let t = _mm512_add_ps(
            _mm512_unpacklo_ps(abcd, efgh),
            _mm512_unpackhi_ps(abcd, efgh),
        );
        let t = _mm512_add_ps(t, _mm512_permute_ps::<0b01_00_11_10>(t));
        // Gather lanes 0, 4, 8, 12 (connections 0..4) then 1, 5, 9, 13 (4..8).
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        let sums = _mm512_castps512_ps256(_mm512_permutexvar_ps(order, t));
        // SAFETY: the caller guarantees 8 writable floats at `g`.
        unsafe {
            let sums = if accumulate {
                _mm256_add_ps(_mm256_loadu_ps(g), sums)
            } else {
                sums
            };
            _mm256_storeu_ps(g, sums);
        }
    }

    simd_kernels!("avx512f,avx2,fma");
    simd_backward!("avx512f,avx2,fma");
}

/// AVX2 + FMA kernels (8 lanes).
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    type V = __m256;
    type Mask = __m256i;
    const W: usize = 8;
    /// A tile of 56 floats (7 vectors): two accumulator sets of 7 and the broadcast values fit
    /// in 16 registers.
    const TILE: usize = 56;

    /// Whether every bit of `v` is zero (all lanes `+0.0`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn is_zero(v: V) -> bool {
        let i = _mm256_castps_si256(v);
        _mm256_testz_si256(i, i) == 1
    }

    /// `max(v, 0)`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn max0(v: V) -> V {
        _mm256_max_ps(v, _mm256_setzero_ps())
    }

    /// `h > 0 ? v : 0`, lane by lane.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn keep_pos(v: V, h: V) -> V {
        _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_GT_OQ>(h, _mm256_setzero_ps()))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn zero() -> V {
        _mm256_setzero_ps()
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn splat(v: f32) -> V {
        _mm256_set1_ps(v)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn add(a: V, b: V) -> V {
        _mm256_add_ps(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm256_fmadd_ps(a, b, c)
    }

    /// `c + a·b` on the lanes of `m`; elsewhere `c + a·0`, which is `c` where `a` is 0 (the
    /// kernels mask `a` alike).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fmam(a: V, b: V, c: V, m: Mask) -> V {
        _mm256_fmadd_ps(a, _mm256_and_ps(b, _mm256_castsi256_ps(m)), c)
    }

    /// The mask of the first `n` lanes (`1 ≤ n ≤ 8`): all bits set in those lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn mask(n: usize) -> Mask {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    /// # Safety
    /// 8 floats at `p` must be readable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller guarantees 8 readable floats.
        unsafe { _mm256_loadu_ps(p) }
    }

    /// # Safety
    /// The lanes of `m` at `p` must be readable (masked-off lanes are not touched).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn loadm(p: *const f32, m: Mask) -> V {
        // SAFETY: the caller guarantees the masked lanes are readable; `vmaskmovps` does not
        // fault on masked-off lanes.
        unsafe { _mm256_maskload_ps(p, m) }
    }

    /// # Safety
    /// 8 floats at `p` must be writable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the caller guarantees 8 writable floats.
        unsafe { _mm256_storeu_ps(p, v) }
    }

    /// # Safety
    /// The lanes of `m` at `p` must be writable (masked-off lanes are not touched).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn storem(p: *mut f32, m: Mask, v: V) {
        // SAFETY: the caller guarantees the masked lanes are writable.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: V) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// Horizontal sums of two vectors.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum2(a: V, b: V) -> (f32, f32) {
        // One horizontal add pairs up neighbours of both; then fold the 128-bit halves.
        let h = _mm256_hadd_ps(a, b); // a01 a23 b01 b23 | a45 a67 b45 b67
        let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        // s = [a0123+a4567 split in two, b split in two]: lanes 0,1 are a; 2,3 are b.
        let t = _mm_hadd_ps(s, s); // [a, b, a, b]
        (_mm_cvtss_f32(t), _mm_cvtss_f32(_mm_movehdup_ps(t)))
    }

    /// Adds (or, unless `accumulate`, stores) the horizontal sum of each of the 8 vectors `s`
    /// at the matching one of the 8 floats at `g`.
    ///
    /// # Safety
    /// 8 floats at `g` must be readable and writable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn acc8(g: *mut f32, s: [V; 8], accumulate: bool) {
        // Pairwise horizontal adds: [a b c d] partial sums per 128-bit half, for 0..4 and 4..8.
        let h0 = _mm256_hadd_ps(_mm256_hadd_ps(s[0], s[1]), _mm256_hadd_ps(s[2], s[3]));
        let h1 = _mm256_hadd_ps(_mm256_hadd_ps(s[4], s[5]), _mm256_hadd_ps(s[6], s[7]));
        // Low halves of both plus high halves of both: the 8 totals in order.
        let sums = _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(h0, h1),
            _mm256_permute2f128_ps::<0x31>(h0, h1),
        );
        // SAFETY: the caller guarantees 8 writable floats at `g`.
        unsafe {
            let sums = if accumulate {
                _mm256_add_ps(_mm256_loadu_ps(g), sums)
            } else {
                sums
            };
            _mm256_storeu_ps(g, sums);
        }
    }

    simd_kernels!("avx2,fma");
}
