//! numpy's summation order, for bit-exact rewards.

/// Sums `x` in the order numpy's `np.sum` uses for a contiguous float64 array (pairwise
/// summation: a plain loop below 8 terms, eight interleaved partial sums up to 128 terms,
/// recursive halving above).
#[cfg_attr(not(feature = "mujoco"), allow(dead_code))]
pub(crate) fn numpy_sum(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in x {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&x[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += x[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &x[whole..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&x[..n2]) + numpy_sum(&x[n2..])
    }
}

#[cfg(test)]
mod tests {
    use super::numpy_sum;

    #[test]
    fn exact_on_integers() {
        // Small integers add exactly in any order, so every branch must give n(n+1)/2.
        for n in [0usize, 1, 7, 8, 9, 17, 84, 128, 129, 1000] {
            let x: Vec<f64> = (1..=n).map(|i| i as f64).collect();
            assert_eq!(numpy_sum(&x), (n * (n + 1) / 2) as f64, "n = {n}");
        }
    }

    #[test]
    fn order_of_eight_partials() {
        // At 2^53 the doubles are the even integers and a tie rounds to an even mantissa, so
        // 2^53 + 1 rounds back to 2^53: the grouping decides the result. numpy's order:
        // ((2^53 + 1) + (1 + 1)) + ((1 + 1) + (1 + 1)) = 2^53 + 2 + 4.
        let big = 9_007_199_254_740_992.0;
        let mut x = vec![1.0; 8];
        x[0] = big;
        assert_eq!(numpy_sum(&x), big + 6.0);
        // A left-to-right loop loses every 1.
        assert_eq!(x.iter().fold(0.0, |a, b| a + b), big);
    }
}
