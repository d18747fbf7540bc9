//! Adam whose update runs as one fused pass per parameter on flex (CPU).
//!
//! burn's Adam issues about a dozen element-wise tensor ops per parameter per step (moment
//! updates, bias correction, square root, division, the step), each a full pass over the
//! parameter: at the `paper` shape (11 M parameters) that is over a gigabyte of memory
//! traffic per step. [`FusedAdam`] does the same arithmetic in one pass, in place where the
//! buffers are not shared, with the same f32 operations in the same order, so its results
//! are bit-identical to burn's Adam (a test checks this). It keeps burn's [`AdamState`], so
//! optimizer checkpoints are the same files either way. Other devices run burn's tensor ops.

use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchDevice, Flex};
use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;

/// Adam (no weight decay, no AMSGrad) with burn's defaults β₁ = 0.9, β₂ = 0.999.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedAdam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// Drop each term of the moment updates that would be a subnormal float (on flex).
    ///
    /// Moments of parameters whose gradient stays 0 (dead units, features a code never
    /// uses) decay into the subnormal range within a few hundred steps (m by 0.9 a step),
    /// and the square of a gradient under 1e-19 is one; on x86 every operation on one takes
    /// a microcode assist. Without this the update ran 5x slower on a 2-core Intel Xeon
    /// at the `edge` shape. A dropped term is under 1.2e-38, below the rounding of any
    /// moment that is not itself about to vanish; x86's flush-to-zero mode drops the same.
    pub flush_subnormals: bool,
}

impl FusedAdam {
    pub fn new(epsilon: f32) -> Self {
        FusedAdam {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon,
            flush_subnormals: false,
        }
    }

    /// The scalars of step `time` (1 for the first), computed exactly as burn's
    /// `AdaptiveMomentum::transform` does.
    fn scalars(&self, lr: f32, time: usize) -> StepScalars {
        let t = time as i32;
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(t)).sqrt();
        let (one_minus_beta_1, one_minus_beta_2) = (1.0 - self.beta_1, 1.0 - self.beta_2);
        // 0 reads nothing as 0: the update is then exactly burn's.
        let tiny = |bound: f32| if self.flush_subnormals { bound } else { 0.0 };
        StepScalars {
            beta_1: self.beta_1,
            one_minus_beta_1,
            beta_2: self.beta_2,
            one_minus_beta_2,
            combined: bias_correction2_sqrt / (1.0 - self.beta_1.powi(t)),
            eps_corrected: self.epsilon * bias_correction2_sqrt,
            lr,
            tiny_g_m: tiny(f32::MIN_POSITIVE / one_minus_beta_1),
            tiny_g_v: tiny((f32::MIN_POSITIVE / one_minus_beta_2).sqrt()),
            tiny_m: tiny(f32::MIN_POSITIVE / self.beta_1),
            tiny_v: tiny(f32::MIN_POSITIVE / self.beta_2),
        }
    }

    /// This optimiser with [`FusedAdam::flush_subnormals`] set to `on`.
    pub fn flushing_subnormals(self, on: bool) -> Self {
        FusedAdam {
            flush_subnormals: on,
            ..self
        }
    }
}

/// Elements per rayon task: below twice this a parameter is updated on the calling thread.
/// At 2¹⁶ the 98k-element layers of the 768 → 128 shape were updated on one thread: 11 % of
/// its step on a 2-core AVX2 host, with the other core idle (2¹⁴: that step 8–24 % faster).
const PAR_CHUNK: usize = 1 << 14;

/// Scalars of one step ([`FusedAdam::scalars`]).
struct StepScalars {
    beta_1: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    one_minus_beta_2: f32,
    combined: f32,
    eps_corrected: f32,
    lr: f32,
    /// Magnitudes below which a value is read as 0, chosen so that no product of the update
    /// is subnormal (all 0 unless [`FusedAdam::flush_subnormals`]): g in m (g·(1−β₁)), g in v
    /// (g²·(1−β₂)), the old m (m·β₁) and the old v (v·β₂).
    tiny_g_m: f32,
    tiny_g_v: f32,
    tiny_m: f32,
    tiny_v: f32,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        let s = self.scalars(lr as f32, time);
        let on_flex = |t: &Tensor<D>| {
            matches!(t.device().as_dispatch(), DispatchDevice::Flex(_)) && t.dtype() == DType::F32
        };
        let fused = on_flex(&tensor)
            && on_flex(&grad)
            && state
                .as_ref()
                .is_none_or(|st| on_flex(&st.momentum.moment_1) && on_flex(&st.momentum.moment_2));
        let (tensor, m, v) = if fused {
            fused_step(&s, tensor, grad, state)
        } else {
            tensor_ops_step(&s, tensor, grad, state)
        };
        let momentum = AdaptiveMomentumState::new(time, m, v);
        (tensor, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// burn's Adam as tensor ops (every non-flex device).
fn tensor_ops_step<const D: usize>(
    s: &StepScalars,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    state: Option<AdamState<D>>,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (m, v) = match state {
        Some(st) => (
            st.momentum
                .moment_1
                .mul_scalar(s.beta_1)
                .add(grad.clone().mul_scalar(s.one_minus_beta_1)),
            st.momentum
                .moment_2
                .mul_scalar(s.beta_2)
                .add(grad.square().mul_scalar(s.one_minus_beta_2)),
        ),
        None => (
            grad.clone().mul_scalar(s.one_minus_beta_1),
            grad.square().mul_scalar(s.one_minus_beta_2),
        ),
    };
    let update = m
        .clone()
        .mul_scalar(s.combined)
        .div(v.clone().sqrt().add_scalar(s.eps_corrected));
    (tensor - update.mul_scalar(s.lr), m, v)
}

fn to_flex<const D: usize>(t: Tensor<D>) -> FlexTensor {
    let t = t
        .try_into_primitive::<Flex>()
        .expect("checked: a flex f32 tensor");
    // One dense buffer starting at offset 0, so the storage is exactly the elements.
    match t.layout().contiguous_offsets() {
        Some((0, end)) if end == t.storage::<f32>().len() => t,
        _ => t.to_contiguous(),
    }
}

fn from_flex<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t)
}

/// The update of [`tensor_ops_step`] as one pass over (parameter, gradient, m, v).
fn fused_step<const D: usize>(
    s: &StepScalars,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    state: Option<AdamState<D>>,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let grad = to_flex(grad);
    let mut param = to_flex(tensor);
    let (mut m, mut v, fresh) = match state {
        Some(st) => (
            to_flex(st.momentum.moment_1),
            to_flex(st.momentum.moment_2),
            false,
        ),
        // Written before being read.
        None => {
            let shape = grad.layout().shape().clone();
            (
                FlexTensor::empty(shape.clone(), DType::F32),
                FlexTensor::empty(shape, DType::F32),
                true,
            )
        }
    };
    let g: &[f32] = grad.storage();
    // storage_mut copies a buffer that something else still shares, never aliasing it.
    let p: &mut [f32] = param.storage_mut();
    let mm: &mut [f32] = m.storage_mut();
    let vv: &mut [f32] = v.storage_mut();
    assert!(g.len() == p.len() && mm.len() == p.len() && vv.len() == p.len());
    if p.len() >= 2 * PAR_CHUNK {
        // Fixed chunks: the same arithmetic whatever the thread count.
        p.par_chunks_mut(PAR_CHUNK)
            .zip(g.par_chunks(PAR_CHUNK))
            .zip(mm.par_chunks_mut(PAR_CHUNK))
            .zip(vv.par_chunks_mut(PAR_CHUNK))
            .for_each(|(((p, g), m), v)| update_chunk(s, fresh, p, g, m, v));
    } else {
        update_chunk(s, fresh, p, g, mm, vv);
    }
    (from_flex(param), from_flex(m), from_flex(v))
}

/// One Adam step on equally long slices: parameters, gradient, first and second moment.
fn update_chunk(
    s: &StepScalars,
    fresh: bool,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is present (checked above).
        unsafe { update_chunk_avx(s, fresh, p, g, m, v) };
        return;
    }
    update_scalar(s, fresh, p, g, m, v);
}

fn update_scalar(
    s: &StepScalars,
    fresh: bool,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    // x, or 0 where |x| < tiny (never for NaN).
    let cut = |x: f32, tiny: f32| if x.abs() < tiny { 0.0 } else { x };
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let (g_m, g_v) = (cut(g, s.tiny_g_m), cut(g, s.tiny_g_v));
        if fresh {
            *m = g_m * s.one_minus_beta_1;
            *v = (g_v * g_v) * s.one_minus_beta_2;
        } else {
            *m = cut(*m, s.tiny_m) * s.beta_1 + g_m * s.one_minus_beta_1;
            *v = cut(*v, s.tiny_v) * s.beta_2 + (g_v * g_v) * s.one_minus_beta_2;
        }
        let step = (*m * s.combined) / (v.sqrt() + s.eps_corrected);
        *p -= step * s.lr;
    }
}

/// [`update_scalar`] eight lanes at a time, written with intrinsics so its speed does not
/// hang on what the compiler vectorises; AVX's mul, add, sqrt and div round exactly like
/// the scalar ops (no FMA contraction), so the result is the same bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn update_chunk_avx(
    s: &StepScalars,
    fresh: bool,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    use std::arch::x86_64::*;
    let n = p.len();
    assert!(g.len() == n && m.len() == n && v.len() == n);
    let lanes = n / 8 * 8;
    let b1 = _mm256_set1_ps(s.beta_1);
    let omb1 = _mm256_set1_ps(s.one_minus_beta_1);
    let b2 = _mm256_set1_ps(s.beta_2);
    let omb2 = _mm256_set1_ps(s.one_minus_beta_2);
    let combined = _mm256_set1_ps(s.combined);
    let eps = _mm256_set1_ps(s.eps_corrected);
    let lr = _mm256_set1_ps(s.lr);
    let (tiny_g_m, tiny_g_v) = (_mm256_set1_ps(s.tiny_g_m), _mm256_set1_ps(s.tiny_g_v));
    let (tiny_m, tiny_v) = (_mm256_set1_ps(s.tiny_m), _mm256_set1_ps(s.tiny_v));
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    // x, or 0 where |x| < tiny (ordered compare: NaN stays NaN), as `cut` in update_scalar.
    let cut = |x: __m256, tiny: __m256| {
        _mm256_andnot_ps(
            _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(x, abs_mask), tiny),
            x,
        )
    };
    let mut i = 0;
    while i < lanes {
        // SAFETY: i + 8 <= n for all four slices (asserted equal lengths above).
        unsafe {
            let gv = _mm256_loadu_ps(g.as_ptr().add(i));
            let (g_m, g_v) = (cut(gv, tiny_g_m), cut(gv, tiny_g_v));
            let gg = _mm256_mul_ps(g_v, g_v);
            let (mv, vv) = if fresh {
                (_mm256_mul_ps(g_m, omb1), _mm256_mul_ps(gg, omb2))
            } else {
                let m0 = cut(_mm256_loadu_ps(m.as_ptr().add(i)), tiny_m);
                let v0 = cut(_mm256_loadu_ps(v.as_ptr().add(i)), tiny_v);
                (
                    _mm256_add_ps(_mm256_mul_ps(m0, b1), _mm256_mul_ps(g_m, omb1)),
                    _mm256_add_ps(_mm256_mul_ps(v0, b2), _mm256_mul_ps(gg, omb2)),
                )
            };
            _mm256_storeu_ps(m.as_mut_ptr().add(i), mv);
            _mm256_storeu_ps(v.as_mut_ptr().add(i), vv);
            let step = _mm256_div_ps(
                _mm256_mul_ps(mv, combined),
                _mm256_add_ps(_mm256_sqrt_ps(vv), eps),
            );
            let pv = _mm256_loadu_ps(p.as_ptr().add(i));
            _mm256_storeu_ps(
                p.as_mut_ptr().add(i),
                _mm256_sub_ps(pv, _mm256_mul_ps(step, lr)),
            );
        }
        i += 8;
    }
    update_scalar(
        s,
        fresh,
        &mut p[lanes..],
        &g[lanes..],
        &mut m[lanes..],
        &mut v[lanes..],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::AdamConfig;
    use burn::tensor::TensorData;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        crate::model::vsc::tensor_to_vec(t)
    }

    #[test]
    fn vector_and_scalar_updates_agree_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let n = 8 * 5 + 3;
        let mut draw =
            |scale: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-scale..scale)).collect() };
        let (mut p, mut g, mut m) = (draw(1.0), draw(0.1), draw(0.1));
        let mut v: Vec<f32> = draw(1e-3).iter().map(|x| x.abs()).collect();
        // Values on both sides of every threshold of the flushing update.
        for (k, tiny) in [1e-40, 2e-38, 1e-37, 1e-30, 1e-19, 1e-18, 1e-17]
            .into_iter()
            .enumerate()
        {
            g[3 * k] = tiny;
            m[3 * k + 1] = -tiny;
            v[3 * k + 2] = tiny;
            p[3 * k] = tiny;
        }
        for flush in [false, true] {
            let s = FusedAdam::new(1e-8)
                .flushing_subnormals(flush)
                .scalars(1e-3, 4);
            for fresh in [true, false] {
                let (mut p1, mut m1, mut v1) = (p.clone(), m.clone(), v.clone());
                let (mut p2, mut m2, mut v2) = (p.clone(), m.clone(), v.clone());
                update_chunk(&s, fresh, &mut p1, &g, &mut m1, &mut v1);
                update_scalar(&s, fresh, &mut p2, &g, &mut m2, &mut v2);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    (bits(&p1), bits(&m1), bits(&v1)),
                    (bits(&p2), bits(&m2), bits(&v2)),
                    "fresh {fresh}, flush {flush}"
                );
            }
        }
    }

    /// With `flush_subnormals` a moment update drops the terms that would be subnormal (an
    /// old moment that has decayed into that range, the square of a gradient under 1e-19)
    /// and nothing else: elements whose terms are all normal get burn's update bit for bit.
    #[test]
    fn flushing_drops_only_the_terms_that_would_be_subnormal() {
        let n = 16;
        let p = vec![0.5f32; n];
        let mut g = vec![0.0f32; n];
        let mut m = vec![0.0f32; n];
        let mut v = vec![0.0f32; n];
        // 0-3: decayed moments and no gradient (a dead unit); 4-7: tiny gradients;
        // 8-15: ordinary values.
        for k in 0..4 {
            m[k] = f32::from_bits(1000 + k as u32);
            v[k] = f32::from_bits(50_000 + k as u32);
        }
        for k in 4..8 {
            g[k] = 1e-21 * (k as f32);
            (m[k], v[k]) = (1e-3, 1e-6);
        }
        for k in 8..n {
            g[k] = 0.01 * (k as f32 - 11.5);
            (m[k], v[k]) = (0.002 * (k as f32 - 12.0), 1e-5 * k as f32);
        }
        let run = |flush: bool| {
            let s = FusedAdam::new(1e-8)
                .flushing_subnormals(flush)
                .scalars(1e-3, 7);
            let (mut p, mut m, mut v) = (p.clone(), m.clone(), v.clone());
            update_scalar(&s, false, &mut p, &g, &mut m, &mut v);
            (p, m, v)
        };
        let (p_off, m_off, v_off) = run(false);
        let (p_on, m_on, v_on) = run(true);
        // Unflushed, the dead unit's moments stay subnormal, and g² is subnormal.
        assert!(
            m_off[..4]
                .iter()
                .chain(&v_off[..4])
                .all(|x| x.is_subnormal())
        );
        assert!(
            g[4..8]
                .iter()
                .all(|g| (g * g).is_subnormal() || g * g == 0.0)
        );
        // Flushed, they are 0; the tiny gradients still move m, not v.
        assert!(m_on[..4].iter().chain(&v_on[..4]).all(|x| *x == 0.0));
        for k in 4..8 {
            assert_eq!(m_on[k], m_off[k], "m[{k}]");
            assert_eq!(v_on[k], v[k] * 0.999, "v[{k}]");
        }
        assert_eq!(p_on[..4], p_off[..4]);
        assert_eq!(
            (&p_on[8..], &m_on[8..], &v_on[8..]),
            (&p_off[8..], &m_off[8..], &v_off[8..])
        );
        assert!(m_on.iter().chain(&v_on).all(|x| !x.is_subnormal()));
    }

    #[test]
    fn fused_adam_is_bit_identical_to_burns_adam() {
        let d = Device::flex();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for n in [37, 3 * PAR_CHUNK + 5] {
            let mut draw = |scale: f32| -> Tensor<1> {
                let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
                Tensor::from_data(TensorData::new(v, [n]), &d)
            };
            let start = draw(1.0);
            let grads: Vec<Tensor<1>> = (0..4).map(|k| draw(10f32.powi(k - 2))).collect();
            let reference = AdamConfig::new().with_epsilon(1e-8).build();
            let fused = FusedAdam::new(1e-8);
            let (mut a, mut b) = (start.clone(), start);
            let (mut sa, mut sb) = (None, None);
            for (k, g) in grads.into_iter().enumerate() {
                let lr = if k < 2 { 1e-3 } else { 1e-4 };
                (a, sa) = reference.step(lr, a, g.clone(), sa);
                (b, sb) = fused.step(lr, b, g, sb);
                assert_eq!(
                    host(a.clone()),
                    host(b.clone()),
                    "n {n}, step {k}: parameters"
                );
                let (ma, mb) = (
                    &sa.as_ref().unwrap().momentum,
                    &sb.as_ref().unwrap().momentum,
                );
                assert_eq!(ma.time, mb.time);
                assert_eq!(host(ma.moment_1.clone()), host(mb.moment_1.clone()));
                assert_eq!(host(ma.moment_2.clone()), host(mb.moment_2.clone()));
            }
        }
    }
}
