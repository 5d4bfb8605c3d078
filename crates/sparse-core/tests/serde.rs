//! Checkpoint serialisation: networks and Adam state round-trip exactly, and invalid data is
//! rejected by the same validation as the constructors.
#![cfg(feature = "serde")]

mod common;

use common::{random_acts, rng};
use sparse_core::{Adam, AdamConfig, Csr, Grads, LayerKind, Mlp, Output, Workspace};

#[test]
fn network_and_optimizer_round_trip() {
    let mut r = rng(1);
    let kinds = [LayerKind::Sparse { lambda: 3.0 }, LayerKind::Dense];
    let mut mlp = Mlp::init(&[70_000, 8, 2], &kinds, Output::Tanh { bound: 0.4 }, &mut r).unwrap();
    let x = random_acts(&mut r, 70_000, 3);
    let mut ws = Workspace::new();
    mlp.forward(&x, &mut ws).unwrap();
    let mut adam = Adam::new(AdamConfig::default(), &mlp).unwrap();
    let mut grads = Grads::zeros_like(&mlp);
    let d = random_acts(&mut r, 2, 3);
    mlp.backward(&mut ws, &d, Some(&mut grads), None).unwrap();
    adam.step(&mut mlp, &grads).unwrap();

    let bytes = postcard::to_stdvec(&(&mlp, &adam)).unwrap();
    let (back, adam2): (Mlp, Adam) = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(adam2, adam);
    assert_eq!(back.flops(), mlp.flops());
    let y1 = mlp.forward(&x, &mut ws).unwrap().clone();
    let y2 = back.forward(&x, &mut ws).unwrap().clone();
    assert_eq!(y1, y2);
}

#[test]
fn invalid_serialised_csr_is_rejected() {
    let m = Csr::<u16>::new(2, 3, vec![0, 1, 2], vec![0, 2], vec![1.0, 2.0]).unwrap();
    let mut bytes = postcard::to_stdvec(&m).unwrap();
    let ok: Csr<u16> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(ok, m);
    // The last column index (2) is encoded as one byte just before the values: make it 9.
    let at = bytes.len() - 1 - 2 * 4 - 1;
    assert_eq!(bytes[at], 2);
    bytes[at] = 9;
    assert!(postcard::from_bytes::<Csr<u16>>(&bytes).is_err());
}
