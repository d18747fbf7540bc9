//! Dense layers `y = x W + b`, optionally followed by ReLU, as one operation on flex (CPU).
//!
//! burn-flex allocates every matmul result zeroed and then copies it once more: cubecl's
//! `Bytes::from_bytes_vec` wants 16-byte alignment and judges it by the element type (bytes,
//! alignment 1), so it always reallocates. On the `paper` shape that is some 70 MB of
//! memset, memcpy and fresh page faults per step, on one thread while the other cores wait
//! (a fifth of the step's wall time had one core idle). Here gemm writes each product straight
//! into an uninitialised `Vec<f32>`, bias and ReLU are one pass over it, and backward writes
//! dW, db and dx the same way.
//!
//! The products are the ones flex computes: the same gemm with the same operands and strides,
//! so they are bit-identical (the tests check this against burn's ops), except dx for wide
//! layers at batches of 64-256 rows, which multiplies by a laid-out Wᵀ instead of a view
//! (faster there; equal to rounding). gemm splits the output, never a sum, across threads,
//! and the bias gradient sums each column in row order, so results depend neither on the
//! thread count nor on which products run on the pool. Under [`with_subnormals_flushed`] the
//! operands' subnormal values are read as 0 first. Tensors on other devices (or with
//! gradient checkpointing) return `None`, and the caller uses burn's ops.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;
use std::cell::Cell;

use super::fused::{AdFlex, TASK_ELEMS, dense, flex_tensor, rows_per_task};

/// m·n·k from which a product runs on the whole thread pool. burn-flex uses 192³; the
/// 128-row heads and decoder inputs of the small shapes (about 1 M multiply-adds) then ran
/// on one thread while the other waited, which on a 2-core AVX2 host cost 2–11 % of an
/// `edge` step. gemm splits only the output columns across threads, so the products are
/// the same either way (the layer tests compare them with burn's to the bit).
const PARALLEL_MACS: usize = 64 * 64 * 64;

/// Whether an `m × k` by `k × n` product runs on the pool (see [`PARALLEL_MACS`]).
fn on_pool(m: usize, n: usize, k: usize) -> bool {
    m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MACS
}

/// Whether dx = dy Wᵀ multiplies by a laid-out copy of Wᵀ rather than a transposed view of
/// W. gemm packs a transposed view element by element; on the thread pool, with W wide
/// (d_out ≥ 2·d_in) and a batch of 64-256 rows, that costs more than laying Wᵀ out first
/// (Smiley's decoder heads, 128 rows × 256 → 1024: 1.38 → 0.46 ms; 128 × 128 → 768: 0.32 →
/// 0.19 ms). Elsewhere the view is as fast or faster: narrow layers (128 × 256 → 60: 0.04
/// against 0.09 ms), the 20 pseudo-input rows (20 × 1152 → 3000: 2.4 against 4.8 ms), and
/// the `paper` batch of 500 (18 against 24 ms).
fn lays_out_wt(rows: usize, d_in: usize, d_out: usize) -> bool {
    (64..=256).contains(&rows) && on_pool(rows, d_in, d_out) && d_out >= 2 * d_in
}

/// `relu(x W + b)` (or without the ReLU) for `x` `[rows, d_in]`, `weight` `[d_in, d_out]`,
/// `bias` `[d_out]`; `None` off flex, on other dtypes or shapes that do not fit.
pub fn try_fused_linear(
    x: &Tensor<2>,
    weight: &Tensor<2>,
    bias: &Tensor<1>,
    relu: bool,
) -> Option<Tensor<2>> {
    if !fits(&[x], weight, bias) {
        return None;
    }
    if let Ok(w) = weight.clone().try_into_primitive::<AdFlex>() {
        let x = x.clone().try_into_primitive::<AdFlex>().ok()?;
        let b = bias.clone().try_into_primitive::<AdFlex>().ok()?;
        let flush = FLUSH_SUBNORMALS.get();
        let (xs, ws, bs) = (
            flushed_if(flush, dense(x.primitive().clone())),
            dense(w.primitive().clone()),
            dense(b.primitive().clone()),
        );
        let y = forward(&xs, &ws, &bs, relu);
        let out = match LinearBackward
            .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = Saved {
                    x: xs,
                    weight: ws,
                    relu_out: relu.then(|| y.clone()),
                    flush,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Some(Tensor::from_primitive::<AdFlex>(out));
    }
    let w = dense(weight.clone().try_into_primitive::<Flex>().ok()?);
    let x = dense(x.clone().try_into_primitive::<Flex>().ok()?);
    let x = flushed_if(FLUSH_SUBNORMALS.get(), x);
    let b = dense(bias.clone().try_into_primitive::<Flex>().ok()?);
    Some(Tensor::from_primitive::<Flex>(forward(&x, &w, &b, relu)))
}

/// `relu([x; p] W + b)` (or without the ReLU): one layer over the rows of `x` followed by
/// those of `p`, `[rows_x + rows_p, d_out]`, as one operation. The VSC encoder reads the batch
/// and the pseudo-inputs this way: run as two layers, backward produced two full-size weight
/// gradients (the pseudo-inputs' one a product of depth U = 20 that writes all of `W`'s
/// elements) and autodiff summed them on one thread, about 5 ms of a `paper` step. Here dW
/// is one product over all rows, and dx is computed only for the inputs that need it.
pub fn try_fused_linear_stacked(
    x: &Tensor<2>,
    p: &Tensor<2>,
    weight: &Tensor<2>,
    bias: &Tensor<1>,
    relu: bool,
) -> Option<Tensor<2>> {
    if !fits(&[x, p], weight, bias) {
        return None;
    }
    let [rows_x, d_in] = x.dims();
    let flush = FLUSH_SUBNORMALS.get();
    if let Ok(w) = weight.clone().try_into_primitive::<AdFlex>() {
        let x = x.clone().try_into_primitive::<AdFlex>().ok()?;
        let p = p.clone().try_into_primitive::<AdFlex>().ok()?;
        let b = bias.clone().try_into_primitive::<AdFlex>().ok()?;
        let xs = stacked(flush, x.primitive(), p.primitive(), d_in);
        let (ws, bs) = (dense(w.primitive().clone()), dense(b.primitive().clone()));
        let y = forward(&xs, &ws, &bs, relu);
        let out = match StackedLinearBackward
            .prepare::<NoCheckpointing>([x.node(), p.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = StackedSaved {
                    layer: Saved {
                        x: xs,
                        weight: ws,
                        relu_out: relu.then(|| y.clone()),
                        flush,
                    },
                    rows_x,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Some(Tensor::from_primitive::<AdFlex>(out));
    }
    let w = dense(weight.clone().try_into_primitive::<Flex>().ok()?);
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let p = p.clone().try_into_primitive::<Flex>().ok()?;
    let xs = stacked(flush, &x, &p, d_in);
    let b = dense(bias.clone().try_into_primitive::<Flex>().ok()?);
    Some(Tensor::from_primitive::<Flex>(forward(&xs, &w, &b, relu)))
}

/// Whether f32 inputs of `weight`'s `d_in` columns, `weight` `[d_in, d_out]` and `bias`
/// `[d_out]` (all f32) make a dense layer.
fn fits(inputs: &[&Tensor<2>], weight: &Tensor<2>, bias: &Tensor<1>) -> bool {
    let [d_in, d_out] = weight.dims();
    inputs
        .iter()
        .all(|x| x.dims()[1] == d_in && x.dtype() == DType::F32)
        && bias.dims() == [d_out]
        && weight.dtype() == DType::F32
        && bias.dtype() == DType::F32
}

/// The rows of `x` followed by those of `p` in one new buffer, subnormals read as 0 when
/// `flush`.
fn stacked(flush: bool, x: &FlexTensor, p: &FlexTensor, cols: usize) -> FlexTensor {
    let (x, p) = (dense(x.clone()), dense(p.clone()));
    let (xs, ps) = (x.storage::<f32>(), p.storage::<f32>());
    let mut all = Vec::with_capacity(xs.len() + ps.len());
    all.extend_from_slice(xs);
    all.extend_from_slice(ps);
    if flush {
        flush_in_place(&mut all);
    }
    let rows = all.len() / cols.max(1);
    flex_tensor(all, &[rows, cols])
}

fn dims2(t: &FlexTensor) -> [usize; 2] {
    let shape = t.layout().shape();
    [shape[0], shape[1]]
}

/// An `m × n` row-major matrix seen through strides: `(pointer, row stride, column stride)`.
type View = (*const f32, isize, isize);

/// `lhs (m × k) · rhs (k × n)` into a new row-major `m × n` buffer, never zeroed first.
fn product(m: usize, n: usize, k: usize, lhs: View, rhs: View) -> Vec<f32> {
    let len = m * n;
    let mut out = Vec::<f32>::with_capacity(len);
    let parallelism = if on_pool(m, n, k) {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views cover `m × k` and `k × n` elements of live buffers (the callers
    // derive them from slices of those sizes); `out` has room for `m × n` elements. With
    // `read_dst = false` gemm writes every destination element (zeros when k = 0) and
    // reads none, so all `len` elements are initialised before `set_len`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.0,
            lhs.2,
            lhs.1,
            rhs.0,
            rhs.2,
            rhs.1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        out.set_len(len);
    }
    out
}

/// Row-major view of a `rows × cols` buffer, or of its transpose (`cols × rows`).
fn view(s: &[f32], cols: usize, transposed: bool) -> View {
    let (rs, cs) = if transposed { (1, cols) } else { (cols, 1) };
    (s.as_ptr(), rs as isize, cs as isize)
}

fn forward(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor, relu: bool) -> FlexTensor {
    let [rows, d_in] = dims2(x);
    let d_out = dims2(w)[1];
    let (xs, ws, bs) = (x.storage::<f32>(), w.storage::<f32>(), b.storage::<f32>());
    let mut y = product(
        rows,
        d_out,
        d_in,
        view(xs, d_in, false),
        view(ws, d_out, false),
    );
    y.par_chunks_mut(rows_per_task(d_out) * d_out.max(1))
        .for_each(|block| {
            for row in block.chunks_mut(d_out.max(1)) {
                for (v, bias) in row.iter_mut().zip(bs) {
                    let s = *v + *bias;
                    // NaN stays NaN, as with burn's ReLU.
                    *v = if relu && s < 0.0 { 0.0 } else { s };
                }
            }
        });
    flex_tensor(y, &[rows, d_out])
}

/// What backward needs from forward.
#[derive(Clone, Debug)]
struct Saved {
    x: FlexTensor,
    weight: FlexTensor,
    /// The layer's output when it ends in a ReLU (its gradient passes where this is > 0).
    relu_out: Option<FlexTensor>,
    /// Whether the layer ran under [`with_subnormals_flushed`]: dy is flushed too.
    flush: bool,
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = dense(grads.consume::<Flex>(&ops.node));
        let [node_x, node_w, node_b] = ops.parents.map(|n| n.map(|n| n.id));
        let rows = dims2(&ops.state.x)[0];
        layer_backward(&ops.state, g, node_w, node_b, &[(node_x, rows)], grads);
    }
}

/// What backward needs from a stacked layer's forward.
#[derive(Clone, Debug)]
struct StackedSaved {
    /// With `x` the stacked rows.
    layer: Saved,
    /// How many of them came from the first input.
    rows_x: usize,
}

#[derive(Debug)]
struct StackedLinearBackward;

impl Backward<Flex, 4> for StackedLinearBackward {
    type State = StackedSaved;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = dense(grads.consume::<Flex>(&ops.node));
        let [node_x, node_p, node_w, node_b] = ops.parents.map(|n| n.map(|n| n.id));
        let s = &ops.state;
        let rows_p = dims2(&s.layer.x)[0] - s.rows_x;
        let blocks = [(node_x, s.rows_x), (node_p, rows_p)];
        layer_backward(&s.layer, g, node_w, node_b, &blocks, grads);
    }
}

/// dW, db and, for each block of the input's rows whose node is tracked, that block's dx,
/// registered with `grads`. `g` is the gradient of the layer's output.
fn layer_backward(
    s: &Saved,
    g: FlexTensor,
    node_w: Option<NodeId>,
    node_b: Option<NodeId>,
    blocks: &[(Option<NodeId>, usize)],
    grads: &mut Gradients,
) {
    let [rows, d_in] = dims2(&s.x);
    let d_out = dims2(&s.weight)[1];
    // Through the ReLU the gradient passes where the output is > 0.
    let masked = s.relu_out.as_ref().map(|y| {
        let (d, y) = (g.storage::<f32>(), y.storage::<f32>());
        if s.flush {
            relu_masked(d, y, flush_one)
        } else {
            relu_masked(d, y, |v| v)
        }
    });
    let g = if masked.is_some() {
        g
    } else {
        flushed_if(s.flush, g)
    };
    let dy: &[f32] = masked.as_deref().unwrap_or_else(|| g.storage::<f32>());
    let (xs, ws) = (s.x.storage::<f32>(), s.weight.storage::<f32>());
    // dW, db and dx read only dy and saved values, so they run side by side on the
    // pool: two products of equal size at once instead of one after the other, each on
    // the threads the other leaves (1.3-1.7x at 128 rows, where products under
    // PARALLEL_MACS run on one thread; a few % at the `paper` shape). Each sum is
    // still computed whole by one task, so nothing depends on the thread count.
    let (dw, (db, dxs)) = rayon::join(
        // dW = xᵀ dy
        || {
            node_w.is_some().then(|| {
                let dw = product(
                    d_in,
                    d_out,
                    rows,
                    view(xs, d_in, true),
                    view(dy, d_out, false),
                );
                flex_tensor(dw, &[d_in, d_out])
            })
        },
        || {
            rayon::join(
                || {
                    node_b
                        .is_some()
                        .then(|| flex_tensor(column_sums(dy, d_out), &[d_out]))
                },
                // dx = dy Wᵀ per block, through a laid-out Wᵀ where that is faster.
                || {
                    let mut wt = None;
                    let mut first = 0;
                    let mut dxs = Vec::with_capacity(blocks.len());
                    for &(node, block_rows) in blocks {
                        let dy = &dy[first * d_out..(first + block_rows) * d_out];
                        first += block_rows;
                        let Some(node) = node else { continue };
                        let rhs = if lays_out_wt(block_rows, d_in, d_out) {
                            view(
                                wt.get_or_insert_with(|| transpose(ws, d_in, d_out)),
                                d_in,
                                false,
                            )
                        } else {
                            view(ws, d_out, true)
                        };
                        let dx = product(block_rows, d_in, d_out, view(dy, d_out, false), rhs);
                        dxs.push((node, flex_tensor(dx, &[block_rows, d_in])));
                    }
                    dxs
                },
            )
        },
    );
    for (node, grad) in [(node_w, dw), (node_b, db)] {
        if let (Some(node), Some(grad)) = (node, grad) {
            grads.register::<Flex>(node, grad);
        }
    }
    for (node, dx) in dxs {
        grads.register::<Flex>(node, dx);
    }
}

thread_local! {
    /// Set by [`with_subnormals_flushed`] for the thread that builds the graph.
    static FLUSH_SUBNORMALS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the dense layers that run on this thread reading subnormal floats as zero:
/// their input x forward (and so in dW) and their output gradient dy backward. Nothing else
/// changes; outside `f` (and with `on` false) the layers compute with IEEE subnormals, as
/// burn's ops do. The previous setting is restored afterwards, also when `f` panics.
///
/// Why: on x86 an FMA that reads a subnormal takes a microcode assist of some hundred
/// cycles, and in a product every subnormal in an operand meets a whole row or column of the
/// other. A VSC step has them in the decoder's input z (spikes relaxed to almost 0 times
/// slab values, 3 % of z on the `paper` shape) and in the gradient of the spike head
/// (saturated spikes). On a 2-core Intel Xeon (AVX-512) the decoder's first layer ran 3-9x
/// slower forward and in dW, and the heads' dW and dx 5-6x slower. Flushed here (with
/// Adam's moments, `train::adam`), a `paper` step is within 1 % of x86's flush-to-zero
/// mode (FTZ/DAZ), which changes the floating-point mode Rust assumes stays at its default.
/// A subnormal's share of a sum is below 1.2e-38 times the other factor, far under the
/// rounding of any value training reads.
pub fn with_subnormals_flushed<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FLUSH_SUBNORMALS.set(self.0);
        }
    }
    let _restore = Restore(FLUSH_SUBNORMALS.replace(on));
    f()
}

/// `v`, or 0 where `v` is subnormal (or ±0). A compare and a select, so loops over it
/// vectorise; `is_subnormal` classifies with branches.
#[inline(always)]
fn flush_one(v: f32) -> f32 {
    if v.abs() < f32::MIN_POSITIVE { 0.0 } else { v }
}

#[inline(always)]
fn is_subnormal(v: f32) -> bool {
    v.abs() < f32::MIN_POSITIVE && v != 0.0
}

/// `t` with its subnormal values replaced by 0 when `on`: `t` itself when it holds none (a
/// read-only scan, the common case), a new buffer otherwise.
fn flushed_if(on: bool, t: FlexTensor) -> FlexTensor {
    let s = t.storage::<f32>();
    let any = on
        && s.par_chunks(TASK_ELEMS)
            .any(|c| c.iter().fold(false, |a, v| a | is_subnormal(*v)));
    if !any {
        return t;
    }
    // A copy and an in-place pass over slices, which vectorises (see `relu_masked`).
    let mut flushed = s.to_vec();
    flush_in_place(&mut flushed);
    let shape = t.layout().shape().to_vec();
    flex_tensor(flushed, &shape)
}

/// Subnormal values replaced by 0, in place over slices of whole tasks (vectorises).
fn flush_in_place(values: &mut [f32]) {
    values.par_chunks_mut(TASK_ELEMS).for_each(|chunk| {
        for v in chunk {
            *v = flush_one(*v);
        }
    });
}

/// `then(dy)` where the ReLU's output `y` is > 0, else 0, into a new buffer. Written through
/// slices of whole tasks rather than as a collected parallel iterator, which fills the
/// vector one element at a time (scalar code, 3-4 % of a `paper` step).
fn relu_masked(dy: &[f32], y: &[f32], then: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let len = dy.len();
    let mut out = Vec::<f32>::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(TASK_ELEMS)
        .zip(dy.par_chunks(TASK_ELEMS).zip(y.par_chunks(TASK_ELEMS)))
        .for_each(|(out, (dy, y))| {
            for (o, (d, y)) in out.iter_mut().zip(dy.iter().zip(y)) {
                // Both read before the select, so the loop has no branch and vectorises.
                let (d, y) = (then(*d), *y);
                o.write(if y <= 0.0 { 0.0 } else { d });
            }
        });
    // SAFETY: the chunks of `out`, `dy` and `y` line up (same lengths, same chunk size), and
    // every element of every chunk of `out` is written.
    unsafe { out.set_len(len) };
    out
}

/// The `cols × rows` transpose of a row-major `rows × cols` buffer.
pub(super) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    // Each task writes TILE output rows (input columns c0..c0 + TILE) whole, TILE × TILE at
    // a time through a local tile: reads and writes both run along rows, where writing each
    // element straight to its place strides by `rows` (2-3.5x slower at Smiley's shapes).
    // Full tiles are copied at a fixed length, inlined, where a slice copy of a run-time
    // length is a call to memcpy per 16 values; the output is not zeroed first.
    const TILE: usize = 16;
    let len = rows * cols;
    let mut t = Vec::<f32>::with_capacity(len);
    if len == 0 {
        return t;
    }
    t.spare_capacity_mut()[..len]
        .par_chunks_mut(TILE * rows)
        .enumerate()
        .for_each(|(task, out)| {
            let c0 = task * TILE;
            let width = out.len() / rows;
            for r0 in (0..rows).step_by(TILE) {
                let height = TILE.min(rows - r0);
                let mut tile = [[0.0f32; TILE]; TILE];
                for (i, tile_row) in tile[..height].iter_mut().enumerate() {
                    let src = &m[(r0 + i) * cols + c0..][..width];
                    match <&[f32; TILE]>::try_from(src) {
                        Ok(full) => *tile_row = *full,
                        Err(_) => tile_row[..width].copy_from_slice(src),
                    }
                }
                for (c, out_row) in out.chunks_exact_mut(rows).enumerate() {
                    for (i, v) in out_row[r0..r0 + height].iter_mut().enumerate() {
                        v.write(tile[i][c]);
                    }
                }
            }
        });
    // SAFETY: the tasks' chunks cover all `len` elements (`rows` per output row, TILE
    // output rows per task), and each task writes every element of its chunk: all output
    // rows c < width, at every input row r0 + i < rows.
    unsafe { t.set_len(len) };
    t
}

/// Σ over rows of each column of a row-major buffer, each column summed in row order.
fn column_sums(m: &[f32], cols: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; cols];
    if cols == 0 {
        return sums;
    }
    let rows = m.len() / cols;
    let cols_per_task = (TASK_ELEMS / rows.max(1)).clamp(16, cols.max(16));
    sums.par_chunks_mut(cols_per_task)
        .enumerate()
        .for_each(|(task, acc)| {
            let (c0, width) = (task * cols_per_task, acc.len());
            for row in m.chunks_exact(cols) {
                for (a, v) in acc.iter_mut().zip(&row[c0..c0 + width]) {
                    *a += *v;
                }
            }
        });
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::vsc::tensor_to_vec;
    use burn::tensor::activation::relu;
    use burn::tensor::{Device, TensorData};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn draw(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// Values and gradients of the fused layer against burn's `linear` (+ `relu`) on flex:
    /// the products bit for bit (same gemm calls), the bias gradient to rounding (its sum
    /// order is ours). Shapes on both sides of the threading threshold, with and without a
    /// ReLU, with the input tracked (a hidden layer) and not (the first layer).
    #[test]
    fn fused_linear_matches_burns_linear_and_relu() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (rows, d_in, d_out) in [
            (5, 3, 4),
            (37, 70, 45),
            // About 1 M multiply-adds: on the pool here, on one thread in burn-flex.
            (128, 128, 64),
            (96, 64, 1200),
            (200, 150, 260),
            (300, 200, 210),
        ] {
            let x = draw(&mut rng, rows * d_in);
            let w = draw(&mut rng, d_in * d_out);
            let b = draw(&mut rng, d_out);
            // Weights for the loss, so each output element's gradient differs.
            let c = draw(&mut rng, rows * d_out);
            for (relu_on, x_tracked) in [(false, false), (true, true), (false, true)] {
                let d = Device::flex().autodiff();
                let run = |fused: bool| {
                    let mut xt =
                        Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, d_in]), &d);
                    if x_tracked {
                        xt = xt.require_grad();
                    }
                    let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [d_in, d_out]), &d)
                        .require_grad();
                    let bt = Tensor::<1>::from_data(TensorData::new(b.clone(), [d_out]), &d)
                        .require_grad();
                    let ct = Tensor::<2>::from_data(TensorData::new(c.clone(), [rows, d_out]), &d);
                    let y = if fused {
                        try_fused_linear(&xt, &wt, &bt, relu_on).expect("flex autodiff")
                    } else {
                        let y =
                            burn::tensor::module::linear(xt.clone(), wt.clone(), Some(bt.clone()));
                        if relu_on { relu(y) } else { y }
                    };
                    let grads = (y.clone() * ct).sum().backward();
                    (
                        tensor_to_vec(y),
                        tensor_to_vec(wt.grad(&grads).unwrap()),
                        tensor_to_vec(bt.grad(&grads).unwrap()),
                        x_tracked.then(|| tensor_to_vec(xt.grad(&grads).unwrap())),
                    )
                };
                let (y, dw, db, dx) = run(true);
                let (y_ref, dw_ref, db_ref, dx_ref) = run(false);
                let what = format!("{rows}×{d_in}→{d_out}, relu {relu_on}");
                assert_eq!(y, y_ref, "y, {what}");
                assert_eq!(dw, dw_ref, "dW, {what}");
                // dx from a laid-out Wᵀ: the same sums on another kernel path, so equal to
                // rounding; from the view, bit for bit.
                match (dx, dx_ref) {
                    (Some(dx), Some(dx_ref)) if lays_out_wt(rows, d_in, d_out) => {
                        let scale = dx_ref.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                        for (k, (a, r)) in dx.iter().zip(&dx_ref).enumerate() {
                            assert!((a - r).abs() <= 1e-6 * scale, "dx[{k}] {a} vs {r}, {what}");
                        }
                    }
                    (dx, dx_ref) => assert_eq!(dx, dx_ref, "dx, {what}"),
                }
                for (k, (a, r)) in db.iter().zip(&db_ref).enumerate() {
                    assert!(
                        (a - r).abs() <= 1e-5 * rows as f32,
                        "db[{k}] {a} vs {r}, {what}"
                    );
                }
                if relu_on {
                    assert!(y.contains(&0.0) && y.iter().any(|v| *v > 0.0));
                }
            }
        }
    }

    /// The stacked layer against burn's `linear` on the concatenated rows (+ `relu`): values
    /// and dW bit for bit (the same product), dx of each input to rounding where it comes
    /// from a laid-out Wᵀ, else bit for bit, db to rounding; an untracked first input (the
    /// batch) gets no dx while the second (the pseudo-inputs) does.
    #[test]
    fn stacked_linear_matches_burns_linear_on_the_concatenated_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (rows_x, rows_p, d_in, d_out, relu_on, x_tracked) in [
            (7, 3, 5, 4, true, false),
            (128, 20, 96, 200, true, false),
            (128, 20, 64, 160, false, true),
            (300, 20, 150, 210, true, true),
        ] {
            let x = draw(&mut rng, rows_x * d_in);
            let p = draw(&mut rng, rows_p * d_in);
            let w = draw(&mut rng, d_in * d_out);
            let b = draw(&mut rng, d_out);
            let c = draw(&mut rng, (rows_x + rows_p) * d_out);
            let d = Device::flex().autodiff();
            let run = |fused: bool| {
                let mut xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [rows_x, d_in]), &d);
                if x_tracked {
                    xt = xt.require_grad();
                }
                let pt = Tensor::<2>::from_data(TensorData::new(p.clone(), [rows_p, d_in]), &d)
                    .require_grad();
                let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [d_in, d_out]), &d)
                    .require_grad();
                let bt =
                    Tensor::<1>::from_data(TensorData::new(b.clone(), [d_out]), &d).require_grad();
                let ct = Tensor::<2>::from_data(
                    TensorData::new(c.clone(), [rows_x + rows_p, d_out]),
                    &d,
                );
                let y = if fused {
                    try_fused_linear_stacked(&xt, &pt, &wt, &bt, relu_on).expect("flex autodiff")
                } else {
                    let all = Tensor::cat(vec![xt.clone(), pt.clone()], 0);
                    let y = burn::tensor::module::linear(all, wt.clone(), Some(bt.clone()));
                    if relu_on { relu(y) } else { y }
                };
                let grads = (y.clone() * ct).sum().backward();
                (
                    tensor_to_vec(y),
                    tensor_to_vec(wt.grad(&grads).unwrap()),
                    tensor_to_vec(bt.grad(&grads).unwrap()),
                    xt.grad(&grads).map(tensor_to_vec),
                    tensor_to_vec(pt.grad(&grads).unwrap()),
                )
            };
            let (y, dw, db, dx, dp) = run(true);
            let (y_ref, dw_ref, db_ref, dx_ref, dp_ref) = run(false);
            let what = format!("{rows_x}+{rows_p}×{d_in}→{d_out}, relu {relu_on}");
            assert_eq!(y, y_ref, "y, {what}");
            assert_eq!(dw, dw_ref, "dW, {what}");
            assert_eq!(dx.is_some(), x_tracked, "dx of the first input, {what}");
            for (rows, got, want) in [
                (rows_x, dx.unwrap_or_default(), dx_ref.unwrap_or_default()),
                (rows_p, dp, dp_ref),
            ] {
                assert_eq!(got.len(), want.len(), "{what}");
                if lays_out_wt(rows, d_in, d_out) {
                    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    for (k, (a, r)) in got.iter().zip(&want).enumerate() {
                        assert!((a - r).abs() <= 1e-6 * scale, "dx[{k}] {a} vs {r}, {what}");
                    }
                } else {
                    assert_eq!(got, want, "dx of a {rows}-row input, {what}");
                }
            }
            for (k, (a, r)) in db.iter().zip(&db_ref).enumerate() {
                let rows = (rows_x + rows_p) as f32;
                assert!((a - r).abs() <= 1e-5 * rows, "db[{k}] {a} vs {r}, {what}");
            }
        }
    }

    /// Under [`with_subnormals_flushed`] the layer computes what burn's ops compute on x and
    /// dy with their subnormals zeroed; outside it, what they compute on the values as given.
    /// Column 1 of x and column 2 of dy are all subnormal, so the difference shows: dW's row
    /// 1 and column 2 and db's element 2 are exactly 0 flushed and subnormal sums otherwise.
    #[test]
    fn dense_layers_read_subnormals_as_zero_only_when_asked() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (rows, d_in, d_out) = (70, 5, 4);
        let tiny = |rng: &mut ChaCha8Rng| f32::from_bits(rng.random_range(1..1 << 20));
        let mut x = draw(&mut rng, rows * d_in);
        let mut c = draw(&mut rng, rows * d_out);
        for r in 0..rows {
            x[r * d_in + 1] = tiny(&mut rng);
            c[r * d_out + 2] = tiny(&mut rng);
        }
        // A few more scattered through the other columns.
        for k in [3, 17, 40, 111] {
            x[k] = -tiny(&mut rng);
            c[k + 1] = tiny(&mut rng);
        }
        let (w, b) = (draw(&mut rng, d_in * d_out), draw(&mut rng, d_out));
        let zeroed = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|v| if v.is_subnormal() { 0.0 } else { *v })
                .collect()
        };
        let d = Device::flex().autodiff();
        // y, dW, db, dx of `sum(layer(x) * c)`, fused or with burn's ops.
        let run = |x: &[f32], c: &[f32], relu_on: bool, fused: bool| {
            let xt = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [rows, d_in]), &d)
                .require_grad();
            let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [d_in, d_out]), &d)
                .require_grad();
            let bt = Tensor::<1>::from_data(TensorData::new(b.clone(), [d_out]), &d).require_grad();
            let ct = Tensor::<2>::from_data(TensorData::new(c.to_vec(), [rows, d_out]), &d);
            let y = if fused {
                try_fused_linear(&xt, &wt, &bt, relu_on).expect("flex autodiff")
            } else {
                let y = burn::tensor::module::linear(xt.clone(), wt.clone(), Some(bt.clone()));
                if relu_on { relu(y) } else { y }
            };
            let grads = (y.clone() * ct).sum().backward();
            [
                tensor_to_vec(y),
                tensor_to_vec(wt.grad(&grads).unwrap()),
                tensor_to_vec(bt.grad(&grads).unwrap()),
                tensor_to_vec(xt.grad(&grads).unwrap()),
            ]
        };
        for relu_on in [false, true] {
            let flushed = with_subnormals_flushed(true, || run(&x, &c, relu_on, true));
            let kept = run(&x, &c, relu_on, true);
            let want_flushed = run(&zeroed(&x), &zeroed(&c), relu_on, false);
            let want_kept = run(&x, &c, relu_on, false);
            for (name, k) in [("y", 0), ("dW", 1), ("dx", 3)] {
                assert_eq!(
                    flushed[k], want_flushed[k],
                    "{name} flushed, relu {relu_on}"
                );
                assert_eq!(kept[k], want_kept[k], "{name} kept, relu {relu_on}");
            }
            let (dw, db) = (&flushed[1], &flushed[2]);
            assert!((0..d_out).all(|o| dw[d_out + o] == 0.0), "{dw:?}");
            assert!((0..d_in).all(|i| dw[i * d_out + 2] == 0.0), "{dw:?}");
            assert_eq!(db[2], 0.0);
            let (dw, db) = (&kept[1], &kept[2]);
            assert!((0..d_out).any(|o| dw[d_out + o].is_subnormal()), "{dw:?}");
            assert!(db[2] != 0.0 && db[2].abs() < f32::MIN_POSITIVE * rows as f32);
        }
    }

    #[test]
    fn the_flush_setting_is_restored_after_the_call_also_on_panic() {
        assert!(!FLUSH_SUBNORMALS.get());
        with_subnormals_flushed(true, || {
            assert!(FLUSH_SUBNORMALS.get());
            with_subnormals_flushed(false, || assert!(!FLUSH_SUBNORMALS.get()));
            assert!(FLUSH_SUBNORMALS.get());
        });
        assert!(!FLUSH_SUBNORMALS.get());
        let panicked = std::panic::catch_unwind(|| with_subnormals_flushed(true, || panic!("x")));
        assert!(panicked.is_err());
        assert!(!FLUSH_SUBNORMALS.get());
        // Another thread has its own setting.
        with_subnormals_flushed(true, || {
            assert!(
                !std::thread::spawn(|| FLUSH_SUBNORMALS.get())
                    .join()
                    .unwrap()
            )
        });
    }

    #[test]
    fn without_autodiff_it_is_the_same_forward() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let (rows, d_in, d_out) = (33, 20, 17);
        let (x, w, b) = (
            draw(&mut rng, rows * d_in),
            draw(&mut rng, d_in * d_out),
            draw(&mut rng, d_out),
        );
        let d = Device::flex();
        let xt = Tensor::<2>::from_data(TensorData::new(x, [rows, d_in]), &d);
        let wt = Tensor::<2>::from_data(TensorData::new(w, [d_in, d_out]), &d);
        let bt = Tensor::<1>::from_data(TensorData::new(b, [d_out]), &d);
        let got = tensor_to_vec(try_fused_linear(&xt, &wt, &bt, true).unwrap());
        let want = tensor_to_vec(relu(burn::tensor::module::linear(xt, wt, Some(bt))));
        assert_eq!(got, want);
        // A transposed (strided) input is made dense first.
        let xt2 =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32; rows * d_in], [d_in, rows]), &d)
                .transpose();
        assert!(
            try_fused_linear(
                &xt2,
                &Tensor::zeros([d_in, d_out], &d),
                &Tensor::zeros([d_out], &d),
                false
            )
            .is_some()
        );
    }

    #[test]
    fn transpose_moves_every_element() {
        for (rows, cols) in [
            (0, 3),
            (3, 0),
            (1, 1),
            (3, 70),
            (65, 33),
            (100, 1),
            (32, 48),
        ] {
            let m: Vec<f32> = (0..rows * cols).map(|k| k as f32).collect();
            let t = transpose(&m, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        t[c * rows + r],
                        m[r * cols + c],
                        "{rows}×{cols} at ({r}, {c})"
                    );
                }
            }
        }
    }

    #[test]
    fn column_sums_add_each_column_in_row_order() {
        let m: Vec<f32> = (0..7 * 40).map(|k| (k % 13) as f32 - 6.0).collect();
        let got = column_sums(&m, 40);
        for (c, s) in got.iter().enumerate() {
            let want: f32 = (0..7).map(|r| m[r * 40 + c]).sum();
            assert_eq!(*s, want, "column {c}");
        }
        assert!(column_sums(&[], 0).is_empty());
    }
}
