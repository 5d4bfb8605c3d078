//! CSR validation, sprs interoperability, remaps and activation buffers.

mod common;

use common::rng;
use proptest::prelude::*;
use sparse_core::{Activations, Csr, Error, Remap, padded_stride};

#[test]
fn valid_matrix_round_trips_through_sprs() {
    let m = Csr::<u16>::new(
        3,
        4,
        vec![0, 2, 2, 4],
        vec![0, 3, 1, 2],
        vec![1.0, 2.0, 3.0, 4.0],
    )
    .unwrap();
    assert_eq!(m.nnz(), 4);
    assert_eq!(m.row(2), (&[1u16, 2][..], &[3.0f32, 4.0][..]));
    assert_eq!(m.positions(), vec![0, 3, 9, 10]);
    let s = m.to_sprs();
    assert_eq!(s.get(0, 3), Some(&2.0));
    assert_eq!(s.get(1, 0), None);
    assert_eq!(Csr::from_sprs(s.view()).unwrap(), m);
    assert_eq!(
        Csr::<u16>::from_positions(3, 4, &m.positions(), m.values().to_vec()).unwrap(),
        m
    );
    assert_eq!(Csr::from_sprs(s.to_csc().view()), Err(Error::NotCsr));
}

#[test]
fn invalid_input_is_an_error() {
    let new = |rp: Vec<u32>, ci: Vec<u16>, v: Vec<f32>| Csr::<u16>::new(2, 3, rp, ci, v);
    assert!(matches!(
        new(vec![0, 1], vec![0], vec![1.0]),
        Err(Error::RowPtrLength { .. })
    ));
    assert!(matches!(
        new(vec![1, 1, 1], vec![0], vec![1.0]),
        Err(Error::RowPtrStart(1))
    ));
    assert!(matches!(
        new(vec![0, 2, 1], vec![0], vec![1.0]),
        Err(Error::RowPtrDecreasing { row: 1 })
    ));
    assert!(matches!(
        new(vec![0, 1, 2], vec![0], vec![1.0, 2.0]),
        Err(Error::NnzMismatch { .. })
    ));
    assert!(matches!(
        new(vec![0, 1, 2], vec![0, 1], vec![1.0]),
        Err(Error::NnzMismatch { .. })
    ));
    assert!(matches!(
        new(vec![0, 1, 2], vec![0, 3], vec![1.0, 2.0]),
        Err(Error::ColumnOutOfRange {
            row: 1,
            col: 3,
            n_cols: 3
        })
    ));
    assert!(matches!(
        new(vec![0, 2, 2], vec![2, 1], vec![1.0, 2.0]),
        Err(Error::UnsortedColumns { row: 0, col: 1 })
    ));
    assert!(matches!(
        new(vec![0, 2, 2], vec![1, 1], vec![1.0, 2.0]),
        Err(Error::DuplicateColumn { row: 0, col: 1 })
    ));
    assert!(matches!(
        new(vec![0, 1, 1], vec![0], vec![f32::NAN]),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        Csr::<u16>::new(1, 70_000, vec![0, 0], vec![], vec![]),
        Err(Error::TooManyColumns { index_bits: 16, .. })
    ));
    assert!(matches!(
        Csr::<u16>::from_positions(2, 3, &[4, 2], vec![1.0, 1.0]),
        Err(Error::UnsortedColumns { .. })
    ));
    assert!(matches!(
        Csr::<u16>::from_positions(2, 3, &[2, 2], vec![1.0, 1.0]),
        Err(Error::DuplicateColumn { .. })
    ));
    assert!(Csr::<u16>::from_positions(2, 3, &[6], vec![1.0]).is_err());
    assert!(Csr::<u16>::from_positions(2, 3, &[1], vec![]).is_err());
}

/// An independent statement of the CSR invariants, to compare the constructor against.
fn valid(n_rows: usize, n_cols: usize, rp: &[u32], ci: &[u16], v: &[f32]) -> bool {
    rp.len() == n_rows + 1
        && rp[0] == 0
        && rp.windows(2).all(|w| w[0] <= w[1])
        && rp[n_rows] as usize == ci.len()
        && ci.len() == v.len()
        && (0..n_rows).all(|r| {
            let cols = &ci[rp[r] as usize..rp[r + 1] as usize];
            cols.iter().all(|&c| (c as usize) < n_cols) && cols.windows(2).all(|w| w[0] < w[1])
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Arbitrary raw arrays never panic the constructor, and it accepts exactly the valid ones.
    #[test]
    fn constructor_accepts_exactly_valid_input(
        n_rows in 0usize..5,
        n_cols in 0usize..6,
        rp in proptest::collection::vec(0u32..7, 1..7),
        ci in proptest::collection::vec(0u16..7, 0..7),
        extra_value in any::<bool>(),
    ) {
        let mut v = vec![0.5f32; ci.len()];
        if extra_value { v.push(1.0); }
        let got = Csr::<u16>::new(n_rows, n_cols, rp.clone(), ci.clone(), v.clone());
        prop_assert_eq!(got.is_ok(), valid(n_rows, n_cols, &rp, &ci, &v));
    }
}

#[test]
fn remap_between_topologies_follows_positions() {
    let old = Csr::<u16>::from_positions(2, 4, &[0, 2, 5, 7], vec![1.0; 4]).unwrap();
    let new = Csr::<u16>::from_positions(2, 4, &[1, 2, 4, 7], vec![1.0; 4]).unwrap();
    let remap = Remap::between(&old, &new).unwrap();
    let sources: Vec<Option<usize>> = (0..4).map(|i| remap.source(i)).collect();
    assert_eq!(sources, vec![None, Some(1), None, Some(3)]);
    let mut state = vec![10.0, 20.0, 30.0, 40.0];
    remap.apply(&mut state).unwrap();
    assert_eq!(state, vec![0.0, 20.0, 0.0, 40.0]);
    assert!(remap.apply(&mut vec![1.0]).is_err());
    let other = Csr::<u16>::from_positions(3, 4, &[], vec![]).unwrap();
    assert!(Remap::between(&old, &other).is_err());
}

#[test]
fn activation_rows_are_padded_and_aligned() {
    // Multiples of 16 floats, odd numbers of 64-byte lines.
    assert_eq!(padded_stride(1), 16);
    assert_eq!(padded_stride(16), 16);
    assert_eq!(padded_stride(17), 48);
    assert_eq!(padded_stride(32), 48);
    assert_eq!(padded_stride(100), 112);
    assert_eq!(padded_stride(256), 272);
    assert_eq!(padded_stride(257), 272);
    for batch in [1, 7, 100, 256, 257] {
        let a = Activations::zeros(5, batch);
        assert_eq!(a.as_slice().as_ptr() as usize % 64, 0);
        assert_eq!(a.as_slice().len(), 5 * a.stride());
        assert_eq!(a.stride() % 16, 0);
        assert_eq!((a.stride() / 16) % 2, 1);
    }
}

#[test]
fn activations_convert_between_layouts() {
    let mut r = rng(3);
    let data: Vec<f32> = (0..3 * 5).map(|i| i as f32).collect();
    let a = Activations::from_samples(3, 5, &data).unwrap();
    assert_eq!(a.get(2, 4), 14.0);
    assert_eq!(a.get(0, 1), 3.0);
    assert_eq!(a.to_samples(), data);
    assert!(Activations::from_samples(3, 4, &data).is_err());
    let mut stacked = Activations::zeros(5, 5);
    stacked.copy_rows_from(2, &a).unwrap();
    assert_eq!(stacked.row(4), a.row(2));
    assert!(stacked.copy_rows_from(3, &a).is_err());
    let _ = common::random_acts(&mut r, 1, 1);
}
