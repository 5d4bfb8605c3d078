//! Compressed sparse row (CSR) weight matrices that hold only live connections.
//!
//! A weight matrix `W` of shape `n_out × n_in` (row `j` = output neuron `j`) is stored as
//! `row_ptr` (`n_out + 1` offsets), `col_idx` (input index of each live connection, sorted and
//! unique within a row) and `values`. Column indices are `u16` when the layer has at most 65 536
//! inputs and `u32` otherwise ([`SparseWeights`] picks); the kernels are generic over
//! [`ColIndex`].

use crate::error::{Error, Result, check_finite};

mod sealed {
    pub trait Sealed {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

/// An unsigned integer type usable as a CSR column index (`u16` or `u32`).
pub trait ColIndex:
    sealed::Sealed + Copy + Ord + Send + Sync + std::fmt::Debug + sprs::SpIndex + 'static
{
    /// Width of the type in bits.
    const BITS: u32;
    /// Largest number of columns the type can address.
    const MAX_COLS: usize;
    /// Converts a column index known to be below [`Self::MAX_COLS`].
    fn from_col(col: usize) -> Self;
    /// The index as `usize`.
    fn col(self) -> usize;
}

impl ColIndex for u16 {
    const BITS: u32 = 16;
    const MAX_COLS: usize = 1 << 16;
    #[inline(always)]
    fn from_col(col: usize) -> Self {
        debug_assert!(col < Self::MAX_COLS);
        col as u16
    }
    #[inline(always)]
    fn col(self) -> usize {
        self as usize
    }
}

impl ColIndex for u32 {
    const BITS: u32 = 32;
    const MAX_COLS: usize = 1 << 32;
    #[inline(always)]
    fn from_col(col: usize) -> Self {
        debug_assert!(col < Self::MAX_COLS);
        col as u32
    }
    #[inline(always)]
    fn col(self) -> usize {
        self as usize
    }
}

/// A CSR matrix of `f32` values: only the stored (live) entries exist.
///
/// Invariants, checked by every constructor: `row_ptr` has `n_rows + 1` non-decreasing entries
/// starting at 0 and ending at `nnz`; each row's column indices are strictly increasing and below
/// `n_cols`; values are finite.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        try_from = "CsrParts<I>",
        bound(deserialize = "I: serde::Deserialize<'de>")
    )
)]
pub struct Csr<I: ColIndex> {
    n_rows: usize,
    n_cols: usize,
    row_ptr: Vec<u32>,
    col_idx: Vec<I>,
    values: Vec<f32>,
}

impl<I: ColIndex> Csr<I> {
    /// Builds a matrix from its raw arrays, validating every invariant.
    pub fn new(
        n_rows: usize,
        n_cols: usize,
        row_ptr: Vec<u32>,
        col_idx: Vec<I>,
        values: Vec<f32>,
    ) -> Result<Self> {
        if n_cols > I::MAX_COLS {
            return Err(Error::TooManyColumns {
                n_cols,
                index_bits: I::BITS,
            });
        }
        if row_ptr.len() != n_rows + 1 {
            return Err(Error::RowPtrLength {
                expected: n_rows + 1,
                got: row_ptr.len(),
            });
        }
        if row_ptr[0] != 0 {
            return Err(Error::RowPtrStart(row_ptr[0] as usize));
        }
        let end = row_ptr[n_rows] as usize;
        if end != col_idx.len() || end != values.len() {
            return Err(Error::NnzMismatch {
                row_ptr_end: end,
                col_indices: col_idx.len(),
                values: values.len(),
            });
        }
        // Non-decreasing offsets that end at nnz stay within the arrays.
        if let Some(row) = row_ptr.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::RowPtrDecreasing { row });
        }
        for row in 0..n_rows {
            let (lo, hi) = (row_ptr[row] as usize, row_ptr[row + 1] as usize);
            let cols = &col_idx[lo..hi];
            for (i, &c) in cols.iter().enumerate() {
                let col = c.col();
                if col >= n_cols {
                    return Err(Error::ColumnOutOfRange { row, col, n_cols });
                }
                if i > 0 {
                    let prev = cols[i - 1].col();
                    if prev == col {
                        return Err(Error::DuplicateColumn { row, col });
                    }
                    if prev > col {
                        return Err(Error::UnsortedColumns { row, col });
                    }
                }
            }
        }
        check_finite("values", &values)?;
        Ok(Self {
            n_rows,
            n_cols,
            row_ptr,
            col_idx,
            values,
        })
    }

    /// Builds a matrix from strictly increasing flat positions `row * n_cols + col` and their
    /// values (same length). This is how topology-changing code assembles a new layer.
    pub fn from_positions(
        n_rows: usize,
        n_cols: usize,
        positions: &[usize],
        values: Vec<f32>,
    ) -> Result<Self> {
        if values.len() != positions.len() {
            return Err(Error::NnzMismatch {
                row_ptr_end: positions.len(),
                col_indices: positions.len(),
                values: values.len(),
            });
        }
        if n_cols > I::MAX_COLS {
            return Err(Error::TooManyColumns {
                n_cols,
                index_bits: I::BITS,
            });
        }
        if n_cols == 0 && !positions.is_empty() {
            return Err(Error::ColumnOutOfRange {
                row: 0,
                col: 0,
                n_cols,
            });
        }
        if positions.len() > u32::MAX as usize {
            return Err(Error::TooManyEntries(positions.len()));
        }
        let mut row_ptr = vec![0u32; n_rows + 1];
        let mut col_idx = Vec::with_capacity(positions.len());
        for (i, &p) in positions.iter().enumerate() {
            let (row, col) = (p / n_cols.max(1), p % n_cols.max(1));
            if row >= n_rows {
                return Err(Error::ColumnOutOfRange { row, col, n_cols });
            }
            if i > 0 && positions[i - 1] >= p {
                return Err(if positions[i - 1] == p {
                    Error::DuplicateColumn { row, col }
                } else {
                    Error::UnsortedColumns { row, col }
                });
            }
            row_ptr[row + 1] += 1;
            col_idx.push(I::from_col(col));
        }
        for r in 0..n_rows {
            row_ptr[r + 1] += row_ptr[r];
        }
        check_finite("values", &values)?;
        Ok(Self {
            n_rows,
            n_cols,
            row_ptr,
            col_idx,
            values,
        })
    }

    /// Number of rows (layer outputs).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns (layer inputs).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored (live) entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Row offsets: row `j` occupies `row_ptr[j]..row_ptr[j + 1]` of the index and value arrays.
    pub fn row_ptr(&self) -> &[u32] {
        &self.row_ptr
    }

    /// Column index of every stored entry, row by row.
    pub fn col_idx(&self) -> &[I] {
        &self.col_idx
    }

    /// Value of every stored entry, aligned with [`Self::col_idx`].
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Mutable values; the topology stays fixed.
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// Column indices and values of row `row`.
    ///
    /// # Panics
    /// If `row >= n_rows`.
    pub fn row(&self, row: usize) -> (&[I], &[f32]) {
        let (lo, hi) = (self.row_ptr[row] as usize, self.row_ptr[row + 1] as usize);
        (&self.col_idx[lo..hi], &self.values[lo..hi])
    }

    /// Iterates over `(row, col, value)` of every stored entry in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize, f32)> + '_ {
        (0..self.n_rows).flat_map(move |r| {
            let (cols, vals) = self.row(r);
            cols.iter().zip(vals).map(move |(&c, &v)| (r, c.col(), v))
        })
    }

    /// Flat position `row * n_cols + col` of every stored entry, in storage order (increasing).
    pub fn positions(&self) -> Vec<usize> {
        self.iter().map(|(r, c, _)| r * self.n_cols + c).collect()
    }

    /// Splits the matrix into `(row_ptr, col_idx, values)`.
    pub fn into_parts(self) -> (Vec<u32>, Vec<I>, Vec<f32>) {
        (self.row_ptr, self.col_idx, self.values)
    }

    /// Removes the entries in slots `remove` and inserts `insert`, in place.
    ///
    /// `remove` holds strictly increasing slots (indices into [`Self::values`]); `insert` holds
    /// `(position, value)` pairs with strictly increasing flat positions `row * n_cols + col`,
    /// none live once `remove` is gone, and finite values. Entries keep their row-major order
    /// and only those between the first and the last change move. The invariants are checked
    /// for the changed entries alone (`O(changes · log nnz + n_rows)` besides the moves) rather
    /// than re-validated over the whole matrix: the cheap way to change a few connections of a
    /// large layer. On error nothing changes.
    pub fn splice(&mut self, remove: &[usize], insert: &[(usize, f32)]) -> Result<()> {
        self.splice_using(remove, insert, &mut Vec::new())
    }

    /// [`Self::splice`] with `slots` as scratch space for the insertion slots (its contents are
    /// replaced): a caller that keeps one splices without allocating.
    pub fn splice_using(
        &mut self,
        remove: &[usize],
        insert: &[(usize, f32)],
        slots: &mut Vec<usize>,
    ) -> Result<()> {
        let nnz = self.nnz();
        if remove.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::InvalidSplice(
                "removed slots are not strictly increasing",
            ));
        }
        if remove.last().is_some_and(|&s| s >= nnz) {
            return Err(Error::InvalidSplice(
                "removed slot beyond the stored entries",
            ));
        }
        let new_nnz = nnz - remove.len() + insert.len();
        if new_nnz > u32::MAX as usize {
            return Err(Error::TooManyEntries(new_nnz));
        }
        // The slot before which each insertion goes, found before anything moves.
        slots.clear();
        for (k, &(p, v)) in insert.iter().enumerate() {
            let (row, col) = (p / self.n_cols.max(1), p % self.n_cols.max(1));
            if self.n_cols == 0 || row >= self.n_rows {
                return Err(Error::ColumnOutOfRange {
                    row,
                    col,
                    n_cols: self.n_cols,
                });
            }
            if k > 0 && insert[k - 1].0 >= p {
                return Err(if insert[k - 1].0 == p {
                    Error::DuplicateColumn { row, col }
                } else {
                    Error::UnsortedColumns { row, col }
                });
            }
            let at = self.insertion_slot(p);
            let live = at < self.row_ptr[row + 1] as usize && self.col_idx[at].col() == col;
            if live && remove.binary_search(&at).is_err() {
                return Err(Error::DuplicateColumn { row, col });
            }
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    what: "inserted values",
                    index: k,
                    value: v,
                });
            }
            slots.push(at);
        }

        let n_cols = self.n_cols;
        splice_by(&mut self.col_idx, remove, slots, |k| {
            I::from_col(insert[k].0 % n_cols)
        });
        splice_by(&mut self.values, remove, slots, |k| insert[k].1);
        // Row `j` starts after the kept entries of earlier rows and the insertions into them.
        let (mut r, mut k) = (0, 0);
        for j in 1..=self.n_rows {
            let old = self.row_ptr[j] as usize;
            while r < remove.len() && remove[r] < old {
                r += 1;
            }
            while k < insert.len() && insert[k].0 / self.n_cols < j {
                k += 1;
            }
            self.row_ptr[j] = (old - r + k) as u32;
        }
        Ok(())
    }

    /// The slot of the entry at flat position `p = row * n_cols + col`, or the slot a new entry
    /// there would take: the number of stored entries at smaller positions.
    ///
    /// # Panics
    /// If `row >= n_rows`.
    pub fn insertion_slot(&self, p: usize) -> usize {
        let (row, col) = (p / self.n_cols, p % self.n_cols);
        let (lo, hi) = (self.row_ptr[row] as usize, self.row_ptr[row + 1] as usize);
        lo + self.col_idx[lo..hi].partition_point(|c| c.col() < col)
    }

    /// Bytes held by the column indices.
    pub fn index_bytes(&self) -> usize {
        self.col_idx.len() * std::mem::size_of::<I>()
    }

    /// Bytes held by the row pointers.
    pub fn row_ptr_bytes(&self) -> usize {
        self.row_ptr.len() * std::mem::size_of::<u32>()
    }

    /// Converts to a sprs matrix (for interoperability and tests; our kernels do not use sprs).
    pub fn to_sprs(&self) -> sprs::CsMatI<f32, I, usize> {
        sprs::CsMatI::new(
            (self.n_rows, self.n_cols),
            self.row_ptr.iter().map(|&p| p as usize).collect(),
            self.col_idx.clone(),
            self.values.clone(),
        )
    }

    /// Converts from a sprs matrix in CSR storage, validating it as [`Self::new`] does.
    pub fn from_sprs(m: sprs::CsMatViewI<'_, f32, I, usize>) -> Result<Self> {
        if !m.is_csr() {
            return Err(Error::NotCsr);
        }
        let nnz = m.nnz();
        if nnz > u32::MAX as usize {
            return Err(Error::TooManyEntries(nnz));
        }
        let row_ptr = m.indptr().to_proper().iter().map(|&p| p as u32).collect();
        Self::new(
            m.rows(),
            m.cols(),
            row_ptr,
            m.indices().to_vec(),
            m.data().to_vec(),
        )
    }
}

/// Does to a per-entry array what [`Csr::splice`] does to a matrix's entries, so state kept per
/// connection can follow: removes the elements at indices `remove` (strictly increasing) and
/// inserts `insert[k]` before the original element `at[k]` (`at` non-decreasing, at most
/// `v.len()`; an insertion before a removed element takes its place). Only the elements between
/// the first and the last change move.
///
/// # Panics
/// If the indices break these rules or `at` and `insert` differ in length.
pub fn splice_vec<T: Copy>(v: &mut Vec<T>, remove: &[usize], at: &[usize], insert: &[T]) {
    assert_eq!(
        at.len(),
        insert.len(),
        "one insertion slot per inserted element"
    );
    splice_by(v, remove, at, |k| insert[k]);
}

/// [`splice_vec`] with the `k`-th inserted element given by `item(k)`, one per slot of `at`.
fn splice_by<T: Copy>(v: &mut Vec<T>, remove: &[usize], at: &[usize], item: impl Fn(usize) -> T) {
    let len = v.len();
    assert!(
        remove.windows(2).all(|w| w[0] < w[1]) && remove.last().is_none_or(|&r| r < len),
        "removed indices must be strictly increasing and in range"
    );
    assert!(
        at.windows(2).all(|w| w[0] <= w[1]) && at.last().is_none_or(|&a| a <= len),
        "insertion slots must be non-decreasing and in range"
    );
    let new_len = len - remove.len() + at.len();
    // A kept element at old index `x` moves by `shift(x)` = insertions placed before it minus
    // removals before it. Elements moving left are moved front to back, elements moving right
    // back to front; no move then overwrites an element still to be moved.
    let (mut r, mut k, mut shift, mut start) = (0, 0, 0isize, 0);
    loop {
        let ins = at.get(k).copied();
        let rem = remove.get(r).copied();
        let end = ins.unwrap_or(len).min(rem.unwrap_or(len));
        if shift < 0 && end > start {
            v.copy_within(start..end, start.wrapping_add_signed(shift));
        }
        match (ins, rem) {
            (ins, Some(s)) if ins.is_none_or(|a| s < a) => {
                shift -= 1;
                r += 1;
                start = s + 1;
            }
            (Some(a), _) => {
                shift += 1;
                k += 1;
                start = a;
            }
            (None, _) => break,
        }
    }
    if new_len > len {
        v.resize(new_len, item(0));
    }
    let (mut r, mut k, mut end) = (remove.len(), at.len(), len);
    loop {
        let ins = k.checked_sub(1).map(|k| at[k]);
        let rem = r.checked_sub(1).map(|r| remove[r]);
        let start = ins.unwrap_or(0).max(rem.map_or(0, |s| s + 1));
        if shift > 0 && end > start {
            v.copy_within(start..end, start.wrapping_add_signed(shift));
        }
        match (ins, rem) {
            (Some(a), rem) if rem.is_none_or(|s| s < a) => {
                shift -= 1;
                k -= 1;
                end = a;
            }
            (_, Some(s)) => {
                shift += 1;
                r -= 1;
                end = s;
            }
            (_, None) => break,
        }
    }
    // Each insertion lands after the kept elements before it and the insertions before it.
    let mut r = 0;
    for (k, &a) in at.iter().enumerate() {
        while r < remove.len() && remove[r] < a {
            r += 1;
        }
        v[a - r + k] = item(k);
    }
    v.truncate(new_len);
}

/// The raw arrays of a [`Csr`], validated by [`Csr::new`] when deserialised.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct CsrParts<I> {
    n_rows: usize,
    n_cols: usize,
    row_ptr: Vec<u32>,
    col_idx: Vec<I>,
    values: Vec<f32>,
}

#[cfg(feature = "serde")]
impl<I: ColIndex> TryFrom<CsrParts<I>> for Csr<I> {
    type Error = Error;
    fn try_from(p: CsrParts<I>) -> Result<Self> {
        Csr::new(p.n_rows, p.n_cols, p.row_ptr, p.col_idx, p.values)
    }
}

/// The weights of a sparse layer, with the narrowest column-index type that fits.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SparseWeights {
    /// At most 65 536 inputs: 16-bit column indices.
    U16(Csr<u16>),
    /// More inputs: 32-bit column indices.
    U32(Csr<u32>),
}

/// Runs `$body` with `$csr` bound to the concrete [`Csr`] inside a [`SparseWeights`].
#[macro_export]
macro_rules! with_csr {
    ($weights:expr, $csr:ident => $body:expr) => {
        match $weights {
            $crate::SparseWeights::U16($csr) => $body,
            $crate::SparseWeights::U32($csr) => $body,
        }
    };
}

impl SparseWeights {
    /// Builds weights from strictly increasing flat positions `row * n_cols + col`, choosing
    /// `u16` indices when `n_cols <= 65 536`.
    pub fn from_positions(
        n_rows: usize,
        n_cols: usize,
        positions: &[usize],
        values: Vec<f32>,
    ) -> Result<Self> {
        if n_cols <= u16::MAX_COLS {
            Csr::from_positions(n_rows, n_cols, positions, values).map(Self::U16)
        } else {
            Csr::from_positions(n_rows, n_cols, positions, values).map(Self::U32)
        }
    }

    /// Number of rows (layer outputs).
    pub fn n_rows(&self) -> usize {
        with_csr!(self, c => c.n_rows())
    }

    /// Number of columns (layer inputs).
    pub fn n_cols(&self) -> usize {
        with_csr!(self, c => c.n_cols())
    }

    /// Live connections.
    pub fn nnz(&self) -> usize {
        with_csr!(self, c => c.nnz())
    }

    /// The stored values.
    pub fn values(&self) -> &[f32] {
        with_csr!(self, c => c.values())
    }

    /// Mutable stored values; the topology stays fixed.
    pub fn values_mut(&mut self) -> &mut [f32] {
        with_csr!(self, c => c.values_mut())
    }

    /// Row pointers.
    pub fn row_ptr(&self) -> &[u32] {
        with_csr!(self, c => c.row_ptr())
    }

    /// Flat positions `row * n_cols + col` of the live connections, increasing.
    pub fn positions(&self) -> Vec<usize> {
        with_csr!(self, c => c.positions())
    }

    /// Iterates over `(row, col, value)` of every live connection in storage order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (usize, usize, f32)> + '_> {
        with_csr!(self, c => Box::new(c.iter()))
    }

    /// Bytes held by column indices.
    pub fn index_bytes(&self) -> usize {
        with_csr!(self, c => c.index_bytes())
    }

    /// Bytes held by row pointers.
    pub fn row_ptr_bytes(&self) -> usize {
        with_csr!(self, c => c.row_ptr_bytes())
    }
}

/// The transposed structure of a CSR matrix, for gathering `dx = Wᵀ dy`: for each column `k`
/// (a layer input), the rows `j` that use it, in increasing order, and for each such entry the
/// slot of `W[j,k]` in the CSR value array. Values are not copied, so the structure stays valid
/// while values change and only a topology change (a new [`Csr`]) makes it stale.
#[derive(Debug, Clone, PartialEq)]
pub struct Transposed {
    n_rows: usize,
    col_ptr: Vec<u32>,
    rows: Vec<u32>,
    perm: Vec<u32>,
    segments: Segments,
}

/// Each row of a compressed structure cut at column-block boundaries: for row `j` and block
/// `b`, the entries with columns in `b·width .. (b+1)·width` occupy
/// `as_slice()[j·(parts+1) + b] .. as_slice()[j·(parts+1) + b + 1]`.
///
/// The SIMD kernels run block by block, so the input rows one block reads stay in the L1 cache
/// while every output row takes its share of connections from them; without blocks a
/// 256-input layer at batch 100 streams its inputs from L2 for every output row. Blocks are at
/// most [`Segments::BLOCK`] columns wide, and fewer (wider) where rows are so sparse that a
/// block would hold fewer than [`Segments::MIN_RUN`] of a row's entries on average: each
/// segment costs a load and a store of its output tile. Built from the structure alone
/// (`O(rows · blocks · log)`), it stays valid while values change.
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    parts: usize,
    width: usize,
    seg: Vec<u32>,
}

impl Segments {
    /// Widest input block, in columns (64 input rows of a batch of 100 take 28 KiB of L1).
    pub const BLOCK: usize = 64;
    /// Fewest entries per row a block should hold on average. Measured on the 256×256 layer at
    /// batch 100 (`ds-td3 bench --only kernels`, three runs): 12 rather than 32 cuts a
    /// density-0.1 layer into two blocks instead of one, and its step from 64–68 µs to 59–65 µs;
    /// no density or batch got slower.
    pub const MIN_RUN: usize = 12;

    /// The segments of the compressed structure `(ptr, idx)` over `n_cols` columns (each
    /// row's indices increasing).
    pub fn of<I: ColIndex>(ptr: &[u32], idx: &[I], n_cols: usize) -> Self {
        let mut s = Self {
            parts: 1,
            width: 1,
            seg: Vec::new(),
        };
        s.rebuild(ptr, idx, n_cols);
        s
    }

    /// Makes these the segments of `(ptr, idx)`, as [`Self::of`] would, reusing the allocation
    /// (a topology change of a layer that already had segments allocates nothing).
    pub fn rebuild<I: ColIndex>(&mut self, ptr: &[u32], idx: &[I], n_cols: usize) {
        let rows = ptr.len().saturating_sub(1);
        (self.parts, self.width) = Self::blocks(rows, idx.len(), n_cols);
        let p = self.parts + 1;
        self.seg.clear();
        self.seg.resize(rows * p, 0);
        for j in 0..rows {
            self.cut_row(j, ptr, idx);
        }
    }

    /// Makes these the segments of `(ptr, idx)`, as [`Self::rebuild`] would, when they were the
    /// segments of a structure that differs only in the entries of the rows `changed`
    /// (increasing): the other rows keep their cuts, moved to where each row now starts, so a
    /// splice of a few connections costs a pass of additions instead of a binary search per
    /// row and block. Rebuilds in full when the number of rows or the blocks differ.
    pub fn rebuild_rows<I: ColIndex>(
        &mut self,
        ptr: &[u32],
        idx: &[I],
        n_cols: usize,
        changed: &[usize],
    ) {
        let rows = ptr.len().saturating_sub(1);
        if rows != self.rows() || Self::blocks(rows, idx.len(), n_cols) != (self.parts, self.width)
        {
            return self.rebuild(ptr, idx, n_cols);
        }
        let p = self.parts + 1;
        let mut next = changed.iter().copied().peekable();
        for j in 0..rows {
            if next.next_if_eq(&j).is_some() {
                self.cut_row(j, ptr, idx);
            } else {
                let row = &mut self.seg[j * p..(j + 1) * p];
                let shift = ptr[j].wrapping_sub(row[0]);
                row.iter_mut().for_each(|o| *o = o.wrapping_add(shift));
            }
        }
    }

    /// `(parts, width)` for `nnz` entries in `rows` rows over `n_cols` columns.
    fn blocks(rows: usize, nnz: usize, n_cols: usize) -> (usize, usize) {
        let per_row = nnz / rows.max(1);
        let parts = (per_row / Self::MIN_RUN).clamp(1, n_cols.div_ceil(Self::BLOCK).max(1));
        (parts, n_cols.div_ceil(parts).max(1))
    }

    /// Cuts row `j` of `(ptr, idx)` at the block boundaries.
    fn cut_row<I: ColIndex>(&mut self, j: usize, ptr: &[u32], idx: &[I]) {
        let (p, width) = (self.parts + 1, self.width);
        let (lo, hi) = (ptr[j] as usize, ptr[j + 1] as usize);
        let row = &idx[lo..hi];
        let out = &mut self.seg[j * p..(j + 1) * p];
        out[0] = lo as u32;
        for (b, o) in out.iter_mut().enumerate().take(self.parts).skip(1) {
            *o = (lo + row.partition_point(|&k| k.col() < b * width)) as u32;
        }
        out[self.parts] = hi as u32;
    }

    /// Whether these are segments of a structure with row offsets `ptr`: same rows, each row's
    /// segments starting and ending where the row does (the kernels require it; segments built
    /// by [`Self::of`] from that structure always fit).
    pub fn fits(&self, ptr: &[u32]) -> bool {
        let p = self.parts + 1;
        self.rows() + 1 == ptr.len()
            && (0..self.rows())
                .all(|j| self.seg[j * p] == ptr[j] && self.seg[j * p + self.parts] == ptr[j + 1])
    }

    /// Columns per block.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of column blocks.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The offsets, `parts + 1` per row: row `j`'s block `b` starts at
    /// `as_slice()[j * (parts + 1) + b]`.
    pub fn as_slice(&self) -> &[u32] {
        &self.seg
    }

    /// Number of rows covered.
    pub fn rows(&self) -> usize {
        self.seg.len() / (self.parts + 1)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * self.seg.len()
    }
}

impl Transposed {
    /// Builds the transposed structure of `w` by a counting sort over columns (`O(nnz + n_cols)`).
    pub fn of<I: ColIndex>(w: &Csr<I>) -> Self {
        let mut t = Self {
            n_rows: 0,
            col_ptr: Vec::new(),
            rows: Vec::new(),
            perm: Vec::new(),
            segments: Segments::of::<u32>(&[0], &[], 1),
        };
        t.rebuild(w);
        t
    }

    /// Makes this the transposed structure of `w`, as [`Self::of`] would, reusing the
    /// allocations (a topology change of a layer that already had one allocates nothing when
    /// the connection count stays).
    pub fn rebuild<I: ColIndex>(&mut self, w: &Csr<I>) {
        let (n_cols, nnz) = (w.n_cols(), w.nnz());
        let col_ptr = &mut self.col_ptr;
        col_ptr.clear();
        col_ptr.resize(n_cols + 1, 0);
        for &k in w.col_idx() {
            col_ptr[k.col() + 1] += 1;
        }
        for k in 0..n_cols {
            col_ptr[k + 1] += col_ptr[k];
        }
        self.rows.resize(nnz, 0);
        self.perm.resize(nnz, 0);
        // `col_ptr[k]` serves as column `k`'s cursor, ending at the start of column `k + 1`;
        // shifting by one afterwards restores the offsets.
        for j in 0..w.n_rows() {
            let (lo, hi) = (w.row_ptr()[j] as usize, w.row_ptr()[j + 1] as usize);
            for (slot, &k) in (lo..hi).zip(&w.col_idx()[lo..hi]) {
                let at = &mut col_ptr[k.col()];
                self.rows[*at as usize] = j as u32;
                self.perm[*at as usize] = slot as u32;
                *at += 1;
            }
        }
        col_ptr.copy_within(0..n_cols, 1);
        col_ptr[0] = 0;
        self.n_rows = w.n_rows();
        self.segments.rebuild(&self.col_ptr, &self.rows, w.n_rows());
    }

    /// The entries of each column cut at row-block boundaries (see [`Segments`]).
    pub fn segments(&self) -> &Segments {
        &self.segments
    }

    /// Column offsets: column `k`'s entries occupy `col_ptr[k]..col_ptr[k + 1]`.
    pub fn col_ptr(&self) -> &[u32] {
        &self.col_ptr
    }

    /// Row index of every entry, column by column (increasing within a column).
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }

    /// Slot in the CSR value array of every entry.
    pub fn perm(&self) -> &[u32] {
        &self.perm
    }

    /// Number of rows of the original matrix.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns of the original matrix.
    pub fn n_cols(&self) -> usize {
        self.col_ptr.len() - 1
    }

    /// Number of entries.
    pub fn nnz(&self) -> usize {
        self.rows.len()
    }

    /// Whether this is the structure of a matrix of `w`'s shape and entry count (the kernels
    /// require it; a structure built by [`Self::of`] from `w` itself always is).
    pub fn fits<I: ColIndex>(&self, w: &Csr<I>) -> bool {
        self.n_rows == w.n_rows() && self.n_cols() == w.n_cols() && self.nnz() == w.nnz()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * (self.col_ptr.len() + self.rows.len() + self.perm.len()) + self.segments.bytes()
    }
}
