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

type AdFlex = Autodiff<Flex, NoCheckpointing>;

/// Elements per rayon task (whole rows): small tensors stay on the calling thread.
const TASK_ELEMS: usize = 1 << 15;

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
fn dense(t: FlexTensor) -> FlexTensor {
    match t.layout().contiguous_offsets() {
        Some((0, end)) if end == t.storage::<f32>().len() => t,
        _ => t.to_contiguous(),
    }
}

fn flex_2d(values: Vec<f32>, rows: usize, cols: usize) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, [rows, cols]))
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

fn sigmoid(l: f32) -> f32 {
    // As burn-flex computes it: never exp of a large positive number.
    if l >= 0.0 {
        1.0 / (1.0 + (-l).exp())
    } else {
        let e = l.exp();
        e / (1.0 + e)
    }
}

/// log σ(l) = −(max(−l, 0) + ln(1 + e^{−|l|})), finite for every finite l.
fn log_sigmoid(l: f32) -> f32 {
    -((-l).max(0.0) + (-l.abs()).exp().ln_1p())
}

/// Rows per rayon task for rows of `cols` elements.
fn rows_per_task(cols: usize) -> usize {
    (TASK_ELEMS / cols.max(1)).max(1)
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
    let r = r.map(|r| r.storage::<f32>());
    let learned = matches!(kind, FusedLikelihood::GaussianLearned { .. });
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
            let row = t * per_task + k;
            let at = row * cols;
            let mut acc = 0.0f64;
            for c in 0..cols {
                let (xv, lv_) = (x[at + c], l[at + c]);
                let mu = sigmoid(lv_);
                let term = match kind {
                    FusedLikelihood::GaussianLearned { logvar_floor } => {
                        let raw = r.expect("checked: learned variance has r")[at + c];
                        // NaN stays NaN, as with burn's clamp_min.
                        let lv = match logvar_floor {
                            Some(f) if raw < f => f,
                            _ => raw,
                        };
                        let iv = (-lv).exp();
                        if keep {
                            inv_var[k * cols + c] = iv;
                        }
                        let d = xv - mu;
                        lv + d * d * iv
                    }
                    FusedLikelihood::GaussianFixed { .. } => {
                        let d = xv - mu;
                        d * d
                    }
                    // −[x log σ(l) + (1 − x) log σ(−l)] = (1 − x) l − log σ(l)
                    FusedLikelihood::Bernoulli => (1.0 - xv) * lv_ - log_sigmoid(lv_),
                };
                if keep {
                    mean[k * cols + c] = mu;
                }
                acc += term as f64;
            }
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
        nll: flex_2d(nll, rows, 1),
        mean: keep.then(|| flex_2d(mean, rows, cols)),
        inv_var: (keep && learned).then(|| flex_2d(inv_var, rows, cols)),
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
            let (gr, at) = (g[row], row * cols);
            for (c, out) in dl_row.iter_mut().enumerate() {
                let (xv, mu) = (x[at + c], mean[at + c]);
                *out = match saved.kind {
                    FusedLikelihood::GaussianLearned { logvar_floor } => {
                        let iv = inv_var.expect("kept")[at + c];
                        let d = xv - mu;
                        // The clamp passes the gradient where raw ≥ floor.
                        let passes = logvar_floor.is_none_or(|f| raw.expect("kept")[at + c] >= f);
                        dr[k * cols + c] = if passes {
                            0.5 * gr * (1.0 - d * d * iv)
                        } else {
                            0.0
                        };
                        -gr * d * iv * mu * (1.0 - mu)
                    }
                    FusedLikelihood::GaussianFixed { logvar } => {
                        -gr * (xv - mu) * (-logvar).exp() * mu * (1.0 - mu)
                    }
                    FusedLikelihood::Bernoulli => gr * (mu - xv),
                };
            }
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
        flex_2d(dl, rows, cols),
        learned.then(|| flex_2d(dr, rows, cols)),
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

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1.0),
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
