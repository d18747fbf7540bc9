//! The reconstruction term −log p(x|z) as one fused operation on flex (CPU).
//!
//! As burn tensor ops the Gaussian term is about ten element-wise passes over the
//! `[rows, M]` decoder output forward and some twenty backward (sigmoid and exp are
//! recomputed from their inputs there), each allocating its result; on the `paper` and
//! Smiley shapes that is a sixth of a training step. Here one pass computes the per-row
//! sums and keeps σ(l) and 1/σ², and one pass backward turns them into the gradients of
//! the logits and the log-variance. Rows are split over the rayon pool in fixed blocks,
//! and each row is summed in one order, so the result does not depend on the thread count.
//!
//! Tensors on any other device (or with gradient checkpointing) take the tensor-op form,
//! [`super::vsc::recon_nll`], which computes the same quantity.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::vsc::LN_2PI;

/// Autodiff on flex without checkpointing: the only graph the fused ops join.
pub(super) type AdFlex = Autodiff<Flex, NoCheckpointing>;

/// Elements per rayon task (whole rows): small tensors stay on the calling thread.
pub(super) const TASK_ELEMS: usize = 1 << 15;

/// The observation model of a fused reconstruction term.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FusedLikelihood {
    /// Gaussian with mean σ(l) and log-variance max(r, floor) from a second input r.
    GaussianLearned { logvar_floor: Option<f32> },
    /// Gaussian with mean σ(l) and a fixed log-variance.
    GaussianFixed { logvar: f32 },
    /// Bernoulli with mean σ(l).
    Bernoulli,
}

/// −log p(x | l, r) summed over each row, `[rows, 1]`; `logvar_raw` is used (and required)
/// only for [`FusedLikelihood::GaussianLearned`]. `None` when the tensors are not on flex
/// (plain, or autodiff without checkpointing): the caller then uses tensor ops.
pub fn try_fused_nll(
    x: &Tensor<2>,
    logits: &Tensor<2>,
    logvar_raw: Option<&Tensor<2>>,
    kind: FusedLikelihood,
) -> Option<Tensor<2>> {
    let learned = matches!(kind, FusedLikelihood::GaussianLearned { .. });
    if learned != logvar_raw.is_some()
        || [Some(x), Some(logits), logvar_raw]
            .into_iter()
            .flatten()
            .any(|t| t.dtype() != DType::F32 || t.dims() != x.dims())
    {
        return None;
    }
    if let Ok(l) = logits.clone().try_into_primitive::<AdFlex>() {
        let x = x
            .clone()
            .try_into_primitive::<AdFlex>()
            .ok()?
            .into_primitive();
        let r = match logvar_raw {
            Some(r) => Some(r.clone().try_into_primitive::<AdFlex>().ok()?),
            None => None,
        };
        return Some(Tensor::from_primitive::<AdFlex>(autodiff_nll(
            x, l, r, kind,
        )));
    }
    let l = logits.clone().try_into_primitive::<Flex>().ok()?;
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let r = match logvar_raw {
        Some(r) => Some(r.clone().try_into_primitive::<Flex>().ok()?),
        None => None,
    };
    let fwd = forward(&dense(x), &dense(l), r.map(dense).as_ref(), kind, false);
    Some(Tensor::from_primitive::<Flex>(fwd.nll))
}

type AdTensor = <AdFlex as burn::backend::BackendTypes>::FloatTensorPrimitive;

fn autodiff_nll(
    x: FlexTensor,
    logits: AdTensor,
    logvar_raw: Option<AdTensor>,
    kind: FusedLikelihood,
) -> AdTensor {
    let x = dense(x);
    let l = dense(logits.primitive().clone());
    match logvar_raw {
        Some(r_ad) => {
            let r = dense(r_ad.primitive().clone());
            match LearnedBackward
                .prepare::<NoCheckpointing>([logits.node(), r_ad.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => {
                    let fwd = forward(&x, &l, Some(&r), kind, true);
                    let state = SavedForward {
                        x,
                        mean: fwd.mean.expect("kept"),
                        inv_var: fwd.inv_var,
                        logvar_raw: Some(r),
                        kind,
                    };
                    prep.finish(state, fwd.nll)
                }
                OpsKind::UnTracked(prep) => prep.finish(forward(&x, &l, Some(&r), kind, false).nll),
            }
        }
        None => match LogitsBackward
            .prepare::<NoCheckpointing>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let fwd = forward(&x, &l, None, kind, true);
                let state = SavedForward {
                    x,
                    mean: fwd.mean.expect("kept"),
                    inv_var: None,
                    logvar_raw: None,
                    kind,
                };
                prep.finish(state, fwd.nll)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &l, None, kind, false).nll),
        },
    }
}

/// A dense f32 buffer at offset 0 whose storage is exactly its elements.
pub(super) fn dense(t: FlexTensor) -> FlexTensor {
    match t.layout().contiguous_offsets() {
        Some((0, end)) if end == t.storage::<f32>().len() => t,
        _ => t.to_contiguous(),
    }
}

/// A flex tensor that takes `values` as its buffer (no copy).
pub(super) fn flex_tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// What backward needs from forward.
#[derive(Clone, Debug)]
struct SavedForward {
    x: FlexTensor,
    /// σ(l)
    mean: FlexTensor,
    /// 1/σ² per element (learned variance only).
    inv_var: Option<FlexTensor>,
    logvar_raw: Option<FlexTensor>,
    kind: FusedLikelihood,
}

struct Forward {
    nll: FlexTensor,
    mean: Option<FlexTensor>,
    inv_var: Option<FlexTensor>,
}

/// Columns per step of the row kernels. Each lane keeps its own f64 partial sum, so a row is
/// summed in one fixed order whatever vector width the CPU has.
const LANES: usize = 16;

/// e^x without a libm call, so the row loops vectorise: Cody–Waite reduction by ln 2 and
/// Cephes' degree-7 polynomial on |r| ≤ ½ ln 2, within 2 ulp of `f32::exp`. x is clamped
/// to [−87, 88] (e^−87 ≈ 1.6e-38 stands for anything smaller); NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // 1.5 · 2^23: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let poly = p * (r * r) + r + 1.0;
    // 2^n from n's bits: n + 127 is in 1..=254 after the clamp.
    poly * f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits() - 127) << 23)
}

/// ln(1 + u) for u in [0, 1], branch-free: 2 atanh(u / (2 + u)) as an odd series in
/// s ≤ 1/3, relative error below 4e-7.
#[inline(always)]
fn ln_1p_unit(u: f32) -> f32 {
    let s = u / (2.0 + u);
    let s2 = s * s;
    let series = (((((s2 * (1.0 / 13.0) + 1.0 / 11.0) * s2 + 1.0 / 9.0) * s2 + 1.0 / 7.0) * s2
        + 1.0 / 5.0)
        * s2
        + 1.0 / 3.0)
        * s2
        + 1.0;
    2.0 * s * series
}

/// σ(l) and e^{−|l|}, never exp of a large positive number (as burn-flex computes σ).
#[inline(always)]
fn sigmoid_and_e(l: f32) -> (f32, f32) {
    let e = exp_f32(-l.abs());
    let (num, den) = (if l >= 0.0 { 1.0 } else { e }, 1.0 + e);
    (num / den, e)
}

/// Rows per rayon task for rows of `cols` elements.
pub(super) fn rows_per_task(cols: usize) -> usize {
    (TASK_ELEMS / cols.max(1)).max(1)
}

/// One element's term of the row sum (before the ½ and constant of the Gaussians), its
/// mean σ(l) and, for the learned variance, 1/σ²: `(x, l, raw log-variance)` → those three.
/// The match is outside the element loop, so each loop body is straight-line code.
macro_rules! with_element {
    ($kind:expr, |$element:ident| $body:expr) => {
        match $kind {
            FusedLikelihood::GaussianLearned { logvar_floor } => {
                let floor = logvar_floor.unwrap_or(f32::NEG_INFINITY);
                let $element = |x: f32, l: f32, raw: f32| {
                    let (mu, _) = sigmoid_and_e(l);
                    // NaN stays NaN, as with burn's clamp_min.
                    let lv = if raw < floor { floor } else { raw };
                    let iv = exp_f32(-lv);
                    let d = x - mu;
                    (lv + d * d * iv, mu, iv)
                };
                $body
            }
            FusedLikelihood::GaussianFixed { .. } => {
                let $element = |x: f32, l: f32, _: f32| {
                    let (mu, _) = sigmoid_and_e(l);
                    let d = x - mu;
                    (d * d, mu, 0.0)
                };
                $body
            }
            // −[x log σ(l) + (1 − x) log σ(−l)] = (1 − x) l − log σ(l), and
            // −log σ(l) = max(−l, 0) + ln(1 + e^{−|l|}).
            FusedLikelihood::Bernoulli => {
                let $element = |x: f32, l: f32, _: f32| {
                    let (mu, e) = sigmoid_and_e(l);
                    let relu_neg = if l < 0.0 { -l } else { 0.0 };
                    ((1.0 - x) * l + relu_neg + ln_1p_unit(e), mu, 0.0)
                };
                $body
            }
        }
    };
}

/// Σ of one row's terms in f64 (lane partial sums, then the lanes in order); with `KEEP`
/// it also stores σ(l) and, with `LEARNED`, 1/σ² (`mean`, `inv_var` as long as the row,
/// or empty; `r` is read only with `LEARNED`).
#[inline(always)]
fn row_terms<const KEEP: bool, const LEARNED: bool>(
    element: impl Fn(f32, f32, f32) -> (f32, f32, f32),
    x: &[f32],
    l: &[f32],
    r: &[f32],
    mean: &mut [f32],
    inv_var: &mut [f32],
) -> f64 {
    let mut acc = [0.0f64; LANES];
    let full = x.len() / LANES * LANES;
    for c0 in (0..full).step_by(LANES) {
        let xs: &[f32; LANES] = x[c0..c0 + LANES].try_into().expect("LANES columns");
        let ls: &[f32; LANES] = l[c0..c0 + LANES].try_into().expect("LANES columns");
        let rs: [f32; LANES] = if LEARNED {
            r[c0..c0 + LANES].try_into().expect("LANES columns")
        } else {
            [0.0; LANES]
        };
        let (mut terms, mut mu, mut iv) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
        for k in 0..LANES {
            (terms[k], mu[k], iv[k]) = element(xs[k], ls[k], rs[k]);
        }
        for k in 0..LANES {
            acc[k] += terms[k] as f64;
        }
        if KEEP {
            mean[c0..c0 + LANES].copy_from_slice(&mu);
            if LEARNED {
                inv_var[c0..c0 + LANES].copy_from_slice(&iv);
            }
        }
    }
    for c in full..x.len() {
        let (term, m, v) = element(x[c], l[c], if LEARNED { r[c] } else { 0.0 });
        acc[c - full] += term as f64;
        if KEEP {
            mean[c] = m;
            if LEARNED {
                inv_var[c] = v;
            }
        }
    }
    acc.iter().sum()
}

/// Runs `f` compiled for AVX2 where the CPU has it. The kernels use the same IEEE
/// operations at any vector width (no FMA contraction), so the result is the same bit for
/// bit either way.
#[inline(always)]
fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: AVX2 is present (checked above).
        return unsafe { avx2(f) };
    }
    f()
}

/// [`row_terms`] for `kind`.
fn row_sum<const KEEP: bool>(
    kind: FusedLikelihood,
    x: &[f32],
    l: &[f32],
    r: &[f32],
    mean: &mut [f32],
    inv_var: &mut [f32],
) -> f64 {
    with_avx2(
        #[inline(always)]
        || {
            if matches!(kind, FusedLikelihood::GaussianLearned { .. }) {
                with_element!(kind, |element| row_terms::<KEEP, true>(
                    element, x, l, r, mean, inv_var
                ))
            } else {
                with_element!(kind, |element| row_terms::<KEEP, false>(
                    element, x, l, r, mean, inv_var
                ))
            }
        },
    )
}

fn forward(
    x: &FlexTensor,
    l: &FlexTensor,
    r: Option<&FlexTensor>,
    kind: FusedLikelihood,
    keep: bool,
) -> Forward {
    let dims = l.layout().shape().to_vec();
    let (rows, cols) = (dims[0], dims[1]);
    let (x, l) = (x.storage::<f32>(), l.storage::<f32>());
    let r = r.map(|r| r.storage::<f32>()).unwrap_or(&[]);
    let learned = matches!(kind, FusedLikelihood::GaussianLearned { .. });
    assert!(
        !learned || r.len() == x.len(),
        "checked: learned variance has r"
    );
    let mut nll = vec![0.0f32; rows];
    let mut mean = vec![0.0f32; if keep { rows * cols } else { 0 }];
    let mut inv_var = vec![0.0f32; if keep && learned { rows * cols } else { 0 }];
    let per_task = rows_per_task(cols);
    let task = |block: Block| {
        let Block {
            index: t,
            a: nll,
            b: mean,
            c: inv_var,
        } = block;
        for (k, out) in nll.iter_mut().enumerate() {
            let at = (t * per_task + k) * cols;
            let row = at..at + cols;
            let r_row = if learned { &r[row.clone()] } else { &[][..] };
            let acc = if keep {
                let iv_row = if learned {
                    &mut inv_var[k * cols..(k + 1) * cols]
                } else {
                    &mut [][..]
                };
                let mean_row = &mut mean[k * cols..(k + 1) * cols];
                row_sum::<true>(kind, &x[row.clone()], &l[row], r_row, mean_row, iv_row)
            } else {
                row_sum::<false>(kind, &x[row.clone()], &l[row], r_row, &mut [], &mut [])
            };
            let m = cols as f64;
            *out = match kind {
                FusedLikelihood::GaussianLearned { .. } => 0.5 * acc + 0.5 * m * LN_2PI as f64,
                FusedLikelihood::GaussianFixed { logvar } => {
                    0.5 * (-logvar as f64).exp() * acc + 0.5 * m * (logvar as f64 + LN_2PI as f64)
                }
                FusedLikelihood::Bernoulli => acc,
            } as f32;
        }
    };
    let blocks = Block::split(
        rows.div_ceil(per_task),
        [
            (&mut nll, per_task),
            (&mut mean, per_task * cols),
            (&mut inv_var, per_task * cols),
        ],
    );
    run_blocks(blocks, task);
    Forward {
        nll: flex_tensor(nll, &[rows, 1]),
        mean: keep.then(|| flex_tensor(mean, &[rows, cols])),
        inv_var: (keep && learned).then(|| flex_tensor(inv_var, &[rows, cols])),
    }
}

/// One task's share of up to three output buffers: block `index` of whole rows.
struct Block<'a> {
    index: usize,
    a: &'a mut [f32],
    b: &'a mut [f32],
    c: &'a mut [f32],
}

impl<'a> Block<'a> {
    /// `tasks` blocks; buffer k is cut into pieces of `per` elements (the last may be
    /// shorter), and a buffer that is not kept (empty) gives empty pieces.
    fn split(tasks: usize, buffers: [(&'a mut [f32], usize); 3]) -> Vec<Block<'a>> {
        let [a, b, c] = buffers.map(|(v, per)| -> Vec<&'a mut [f32]> {
            if v.is_empty() {
                (0..tasks).map(|_| &mut [][..]).collect()
            } else {
                v.chunks_mut(per).collect()
            }
        });
        a.into_iter()
            .zip(b)
            .zip(c)
            .enumerate()
            .map(|(index, ((a, b), c))| Block { index, a, b, c })
            .collect()
    }
}

/// Runs `task` on every block: on the rayon pool when there are several.
fn run_blocks(blocks: Vec<Block<'_>>, task: impl Fn(Block<'_>) + Send + Sync) {
    if blocks.len() > 1 {
        blocks.into_par_iter().for_each(task);
    } else {
        blocks.into_iter().for_each(task);
    }
}

/// Gradients of the logits and (learned variance) of the raw log-variance, given the
/// gradient `g` of each row's sum.
fn backward_grads(saved: &SavedForward, g: &FlexTensor) -> (FlexTensor, Option<FlexTensor>) {
    let dims = saved.mean.layout().shape().to_vec();
    let (rows, cols) = (dims[0], dims[1]);
    let g = dense(g.clone());
    let g = g.storage::<f32>();
    let (x, mean) = (saved.x.storage::<f32>(), saved.mean.storage::<f32>());
    let inv_var = saved.inv_var.as_ref().map(|t| t.storage::<f32>());
    let raw = saved.logvar_raw.as_ref().map(|t| t.storage::<f32>());
    let learned = matches!(saved.kind, FusedLikelihood::GaussianLearned { .. });
    let mut dl = vec![0.0f32; rows * cols];
    let mut dr = vec![0.0f32; if learned { rows * cols } else { 0 }];
    let per_task = rows_per_task(cols);
    let task = |block: Block| {
        let Block {
            index: t,
            a: dl,
            b: dr,
            ..
        } = block;
        for (k, dl_row) in dl.chunks_mut(cols).enumerate() {
            let row = t * per_task + k;
            let at = row * cols..(row + 1) * cols;
            let rows = GradRows {
                x: &x[at.clone()],
                mean: &mean[at.clone()],
                inv_var: inv_var.map_or(&[][..], |v| &v[at.clone()]),
                raw: raw.map_or(&[][..], |v| &v[at]),
            };
            let dr_row = if learned {
                &mut dr[k * cols..(k + 1) * cols]
            } else {
                &mut [][..]
            };
            grads_row_dispatch(saved.kind, g[row], &rows, dl_row, dr_row);
        }
    };
    let blocks = Block::split(
        rows.div_ceil(per_task),
        [
            (&mut dl, per_task * cols),
            (&mut dr, per_task * cols),
            (&mut [], 0),
        ],
    );
    run_blocks(blocks, task);
    (
        flex_tensor(dl, &[rows, cols]),
        learned.then(|| flex_tensor(dr, &[rows, cols])),
    )
}

/// One row's saved forward values (`inv_var`, `raw`: learned variance only, else empty).
struct GradRows<'a> {
    x: &'a [f32],
    mean: &'a [f32],
    inv_var: &'a [f32],
    raw: &'a [f32],
}

/// d/dl and (learned variance) d/d raw of one row, given the gradient `gr` of its sum.
#[inline(always)]
fn grads_row(kind: FusedLikelihood, gr: f32, rows: &GradRows, dl: &mut [f32], dr: &mut [f32]) {
    match kind {
        FusedLikelihood::GaussianLearned { logvar_floor } => {
            let floor = logvar_floor.unwrap_or(f32::NEG_INFINITY);
            let inputs = rows.x.iter().zip(rows.mean).zip(rows.inv_var).zip(rows.raw);
            for ((((&xv, &mu), &iv), &raw), (dl, dr)) in inputs.zip(dl.iter_mut().zip(dr)) {
                let d = xv - mu;
                // The clamp passes the gradient where raw ≥ floor (everywhere without one).
                let passes = logvar_floor.is_none() || raw >= floor;
                *dr = if passes {
                    0.5 * gr * (1.0 - d * d * iv)
                } else {
                    0.0
                };
                *dl = -gr * d * iv * mu * (1.0 - mu);
            }
        }
        FusedLikelihood::GaussianFixed { logvar } => {
            let inv_var = (-logvar).exp();
            for ((&xv, &mu), dl) in rows.x.iter().zip(rows.mean).zip(dl) {
                *dl = -gr * (xv - mu) * inv_var * mu * (1.0 - mu);
            }
        }
        FusedLikelihood::Bernoulli => {
            for ((&xv, &mu), dl) in rows.x.iter().zip(rows.mean).zip(dl) {
                *dl = gr * (mu - xv);
            }
        }
    }
}

fn grads_row_dispatch(
    kind: FusedLikelihood,
    gr: f32,
    rows: &GradRows,
    dl: &mut [f32],
    dr: &mut [f32],
) {
    with_avx2(
        #[inline(always)]
        || grads_row(kind, gr, rows, dl, dr),
    )
}

#[derive(Debug)]
struct LearnedBackward;

impl Backward<Flex, 2> for LearnedBackward {
    type State = SavedForward;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = grads.consume::<Flex>(&ops.node);
        let (dl, dr) = backward_grads(&ops.state, &g);
        let [node_l, node_r] = ops.parents;
        if let Some(node) = node_l {
            grads.register::<Flex>(node.id, dl);
        }
        if let (Some(node), Some(dr)) = (node_r, dr) {
            grads.register::<Flex>(node.id, dr);
        }
    }
}

#[derive(Debug)]
struct LogitsBackward;

impl Backward<Flex, 1> for LogitsBackward {
    type State = SavedForward;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = grads.consume::<Flex>(&ops.node);
        let (dl, _) = backward_grads(&ops.state, &g);
        let [node_l] = ops.parents;
        if let Some(node) = node_l {
            grads.register::<Flex>(node.id, dl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::vsc::{DecoderOut, recon_nll, tensor_to_vec};
    use burn::tensor::Device;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn t2(v: &[f32], rows: usize, cols: usize, d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [rows, cols]), d)
    }

    /// Equal to 1e-5 of the largest |value|: the kernels' exp is within 2 ulp of libm's,
    /// and with σ = 0.05 an ulp of σ(l) moves x − σ(l) by 400 ulp in the gradient.
    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1.0f32, |m, y| m.max(y.abs()));
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale,
                "{what}[{k}]: fused {x} vs tensor ops {y}"
            );
        }
    }

    /// Values and gradients of the fused op against the tensor-op form, for all three
    /// likelihoods, with raw log-variances on both sides of the floor and a row count
    /// that splits into several rayon tasks.
    #[test]
    fn fused_nll_and_gradients_match_the_tensor_ops() {
        let (rows, cols) = (70, 1000);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut draw = |lo: f32, hi: f32| -> Vec<f32> {
            (0..rows * cols).map(|_| rng.random_range(lo..hi)).collect()
        };
        let (x, l, r) = (draw(0.0, 1.0), draw(-8.0, 8.0), draw(-9.0, 2.0));
        // Row weights, so each row's gradient differs.
        let w: Vec<f32> = (0..rows).map(|k| 0.5 + k as f32 / rows as f32).collect();
        let d = Device::flex().autodiff();
        for kind in [
            FusedLikelihood::GaussianLearned {
                logvar_floor: Some(-6.0),
            },
            FusedLikelihood::GaussianLearned { logvar_floor: None },
            FusedLikelihood::GaussianFixed {
                logvar: 2.0 * 0.05f32.ln(),
            },
            FusedLikelihood::Bernoulli,
        ] {
            let learned = matches!(kind, FusedLikelihood::GaussianLearned { .. });
            let run = |fused: bool| {
                let lt = t2(&l, rows, cols, &d).require_grad();
                let rt = t2(&r, rows, cols, &d).require_grad();
                let xt = t2(&x, rows, cols, &d);
                let nll = if fused {
                    try_fused_nll(&xt, &lt, learned.then_some(&rt), kind).expect("on flex")
                } else {
                    let logvar = match kind {
                        FusedLikelihood::GaussianLearned { logvar_floor } => {
                            Some(logvar_floor.map_or(rt.clone(), |f| rt.clone().clamp_min(f)))
                        }
                        FusedLikelihood::GaussianFixed { logvar } => {
                            Some(lt.zeros_like().add_scalar(logvar))
                        }
                        FusedLikelihood::Bernoulli => None,
                    };
                    let out = DecoderOut {
                        logits: lt.clone(),
                        logvar,
                    };
                    recon_nll(xt, &out)
                };
                let grads = (nll.clone() * t2(&w, rows, 1, &d)).sum().backward();
                let gl = tensor_to_vec(lt.grad(&grads).expect("logits gradient"));
                let gr = rt.grad(&grads).map(tensor_to_vec);
                (tensor_to_vec(nll), gl, gr)
            };
            let (fused, ops) = (run(true), run(false));
            close(&fused.0, &ops.0, &format!("{kind:?} nll"));
            close(&fused.1, &ops.1, &format!("{kind:?} d logits"));
            if learned {
                close(
                    &fused.2.expect("fused d logvar"),
                    &ops.2.expect("tensor-op d logvar"),
                    &format!("{kind:?} d logvar"),
                );
            }
        }
    }

    /// ulps between two finite f32 of one sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn kernel_exp_and_ln_1p_follow_std_closely() {
        let mut worst = 0;
        // Every 97th f32 bit pattern in [−87, 88], both signs.
        for bits in (0..0x42B0_0000u32).step_by(97) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                if !(-87.0..=88.0).contains(&x) {
                    continue;
                }
                let (got, want) = (exp_f32(x), x.exp());
                worst = worst.max(ulps(got, want));
                assert!(ulps(got, want) <= 2, "exp({x}): {got} vs {want}");
            }
        }
        assert!(worst >= 1, "the polynomial is not libm: some ulp differ");
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(-1e30), exp_f32(-87.0));
        assert!(ulps(exp_f32(-87.0), (-87.0f32).exp()) <= 2);
        assert!(exp_f32(1e30).is_finite() && exp_f32(1e30) >= 88.0f32.exp() * 0.999_999);
        for k in 0..=100_000 {
            let u = k as f32 / 100_000.0;
            let (got, want) = (ln_1p_unit(u), u.ln_1p());
            assert!(
                (got - want).abs() <= 4e-7 * want.max(f32::MIN_POSITIVE),
                "ln_1p({u}): {got} vs {want}"
            );
        }
        assert_eq!(ln_1p_unit(0.0), 0.0);
    }

    #[test]
    fn fused_nll_without_autodiff_equals_the_tracked_value() {
        let (rows, cols) = (9, 33);
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let v: Vec<f32> = (0..rows * cols).map(|_| rng.random()).collect();
        let kind = FusedLikelihood::GaussianLearned {
            logvar_floor: Some(-1.0),
        };
        let nll = |d: &Device| {
            let t = t2(&v, rows, cols, d);
            tensor_to_vec(try_fused_nll(&t, &t, Some(&t.clone().neg()), kind).expect("on flex"))
        };
        assert_eq!(nll(&Device::flex()), nll(&Device::flex().autodiff()));
    }

    #[test]
    fn mismatched_inputs_fall_back_to_tensor_ops() {
        let d = Device::flex();
        let a = Tensor::<2>::zeros([3, 4], &d);
        let b = Tensor::<2>::zeros([3, 5], &d);
        let learned = FusedLikelihood::GaussianLearned { logvar_floor: None };
        assert!(try_fused_nll(&a, &b, Some(&b), learned).is_none());
        assert!(try_fused_nll(&a, &a, None, learned).is_none());
        assert!(try_fused_nll(&a, &a, Some(&a), FusedLikelihood::Bernoulli).is_none());
    }
}
