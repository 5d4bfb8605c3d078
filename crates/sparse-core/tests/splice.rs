//! `Csr::splice` against rebuilding the matrix from positions, over random changes; and the
//! derived structures (`Segments`, `Transposed`) rebuilt in place, `Segments` also for the
//! changed rows only, against fresh ones.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::csr::splice_vec;
use sparse_core::csr::{Segments, Transposed};
use sparse_core::{Csr, Error};

/// The rows whose entries a splice changes: those of the removed slots and inserted positions.
fn changed_rows<I: sparse_core::ColIndex>(
    m: &Csr<I>,
    remove: &[usize],
    insert: &[(usize, f32)],
) -> Vec<usize> {
    let mut rows: Vec<usize> = remove
        .iter()
        .map(|&s| m.row_ptr().partition_point(|&p| p as usize <= s) - 1)
        .chain(insert.iter().map(|&(p, _)| p / m.n_cols()))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// `(position, value)` of every stored entry.
fn entries<I: sparse_core::ColIndex>(m: &Csr<I>) -> Vec<(usize, f32)> {
    m.iter().map(|(r, c, v)| (r * m.n_cols() + c, v)).collect()
}

fn check<I: sparse_core::ColIndex>(n_rows: usize, n_cols: usize, rng: &mut StdRng) {
    let total = n_rows * n_cols;
    let nnz = rng.random_range(0..=total);
    let mut pos = rand::seq::index::sample(rng, total, nnz).into_vec();
    pos.sort_unstable();
    let vals: Vec<f32> = (0..nnz).map(|i| i as f32 + 1.0).collect();
    let mut m = Csr::<I>::from_positions(n_rows, n_cols, &pos, vals.clone()).unwrap();
    let remove: Vec<usize> = {
        let k = rng.random_range(0..=nnz);
        let mut r = rand::seq::index::sample(rng, nnz, k).into_vec();
        r.sort_unstable();
        r
    };
    // Insert at positions free after the removals (removed positions may come back).
    let removed_pos: Vec<usize> = remove.iter().map(|&s| pos[s]).collect();
    let free: Vec<usize> = (0..total)
        .filter(|p| pos.binary_search(p).is_err() || removed_pos.binary_search(p).is_ok())
        .collect();
    let k = rng.random_range(0..=free.len());
    let mut chosen = rand::seq::index::sample(rng, free.len(), k).into_vec();
    chosen.sort_unstable();
    let insert: Vec<(usize, f32)> = chosen
        .iter()
        .map(|&i| (free[i], -(i as f32) - 1.0))
        .collect();
    let mut want: Vec<(usize, f32)> = pos
        .iter()
        .zip(&vals)
        .enumerate()
        .filter(|(s, _)| remove.binary_search(s).is_err())
        .map(|(_, (&p, &v))| (p, v))
        .chain(insert.iter().copied())
        .collect();
    want.sort_by_key(|e| e.0);
    let mut seg = Segments::of(m.row_ptr(), m.col_idx(), n_cols);
    let mut by_rows = seg.clone();
    let changed = changed_rows(&m, &remove, &insert);
    let mut t = Transposed::of(&m);
    // The scratch form, with scratch left over from an unrelated earlier use.
    let mut slots = vec![7; rng.random_range(0..4)];
    m.splice_using(&remove, &insert, &mut slots).unwrap();
    assert_eq!(entries(&m), want);
    let (p, v): (Vec<usize>, Vec<f32>) = want.into_iter().unzip();
    assert_eq!(m, Csr::<I>::from_positions(n_rows, n_cols, &p, v).unwrap());
    seg.rebuild(m.row_ptr(), m.col_idx(), n_cols);
    assert_eq!(seg, Segments::of(m.row_ptr(), m.col_idx(), n_cols));
    by_rows.rebuild_rows(m.row_ptr(), m.col_idx(), n_cols, &changed);
    assert_eq!(by_rows, seg, "segments rebuilt for the changed rows only");
    t.rebuild(&m);
    assert_eq!(t, Transposed::of(&m));
}

#[test]
fn splice_equals_rebuild() {
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..3000 {
        let (r, c) = (rng.random_range(1..9), rng.random_range(1..9));
        check::<u16>(r, c, &mut rng);
        check::<u32>(r, c, &mut rng);
    }
}

#[test]
fn few_changes_in_a_large_matrix() {
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..200 {
        let n = 160;
        let pos: Vec<usize> = (0..n * n).filter(|_| rng.random_bool(0.5)).collect();
        let vals: Vec<f32> = pos.iter().map(|&p| p as f32).collect();
        let mut m = Csr::<u16>::from_positions(n, n, &pos, vals).unwrap();
        let k = rng.random_range(0..6);
        let mut remove = rand::seq::index::sample(&mut rng, pos.len(), k).into_vec();
        remove.sort_unstable();
        let mut insert: Vec<(usize, f32)> = (0..n * n)
            .filter(|p| pos.binary_search(p).is_err())
            .filter(|_| rng.random_bool(0.002))
            .map(|p| (p, p as f32))
            .collect();
        insert.truncate(rng.random_range(0..6));
        let mut want: Vec<usize> = pos
            .iter()
            .enumerate()
            .filter(|(s, _)| !remove.contains(s))
            .map(|(_, &p)| p)
            .chain(insert.iter().map(|e| e.0))
            .collect();
        want.sort_unstable();
        let mut seg = Segments::of(m.row_ptr(), m.col_idx(), n);
        assert!(seg.parts() > 1, "rows cut into several blocks");
        let changed = changed_rows(&m, &remove, &insert);
        m.splice(&remove, &insert).unwrap();
        let vals = want.iter().map(|&p| p as f32).collect();
        assert_eq!(m, Csr::from_positions(n, n, &want, vals).unwrap());
        seg.rebuild_rows(m.row_ptr(), m.col_idx(), n, &changed);
        assert_eq!(seg, Segments::of(m.row_ptr(), m.col_idx(), n));
    }
}

#[test]
fn invalid_splices_change_nothing() {
    let pos = [0, 2, 5, 7];
    let m = Csr::<u16>::from_positions(3, 3, &pos, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    /// Slots to remove and `(position, value)` pairs to insert.
    type Change<'a> = (&'a [usize], &'a [(usize, f32)]);
    let bad: [Change; 8] = [
        (&[1, 1], &[]),
        (&[2, 1], &[]),
        (&[4], &[]),
        (&[], &[(2, 1.0)]),
        (&[], &[(3, 1.0), (1, 1.0)]),
        (&[], &[(3, 1.0), (3, 1.0)]),
        (&[], &[(9, 1.0)]),
        (&[], &[(3, f32::NAN)]),
    ];
    for (remove, insert) in bad {
        let mut n = m.clone();
        assert!(n.splice(remove, insert).is_err(), "{remove:?} {insert:?}");
        assert_eq!(n, m);
    }
    let mut n = m.clone();
    assert!(matches!(n.splice(&[4], &[]), Err(Error::InvalidSplice(_))));
    // A removed position may be inserted again.
    n.splice(&[1], &[(2, 9.0)]).unwrap();
    assert_eq!(entries(&n), vec![(0, 1.0), (2, 9.0), (5, 3.0), (7, 4.0)]);
}

#[test]
fn splice_vec_equals_naive_rebuild() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..5000 {
        let len = rng.random_range(0..20usize);
        let v: Vec<u32> = (0..len as u32).collect();
        let k = rng.random_range(0..=len);
        let mut remove = rand::seq::index::sample(&mut rng, len.max(1), k.min(len)).into_vec();
        remove.sort_unstable();
        let n_ins = rng.random_range(0..8);
        let mut at: Vec<usize> = (0..n_ins).map(|_| rng.random_range(0..=len)).collect();
        at.sort_unstable();
        let insert: Vec<u32> = (0..n_ins as u32).map(|i| 1000 + i).collect();
        // Naive: walk the old elements, emitting insertions placed before each.
        let mut want = Vec::new();
        let mut i = 0;
        for (x, &e) in v.iter().enumerate() {
            while i < at.len() && at[i] == x {
                want.push(insert[i]);
                i += 1;
            }
            if remove.binary_search(&x).is_err() {
                want.push(e);
            }
        }
        want.extend_from_slice(&insert[i..]);
        let mut got = v.clone();
        splice_vec(&mut got, &remove, &at, &insert);
        assert_eq!(got, want, "remove {remove:?} at {at:?}");
    }
}
