//! Model-level tests: closed-form KL vs Monte Carlo, warm-up slab, spike relaxation,
//! gradient flow.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use host_trainer::model::kl::{spike_slab_kl, spike_slab_kl_scalar};
use host_trainer::model::vsc::{sample_slab, spike_step, tensor_to_vec};
use host_trainer::model::{ModelKind, PriorKind, SelectorKind, SpikeHead, TrainConfig, VscNet};
use host_trainer::train::draw_noise;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

fn t2(v: Vec<f32>, r: usize, c: usize, d: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, [r, c]), d)
}

/// Monte Carlo estimate of KL(q_i || q_u) for one dimension of a spike-and-slab pair:
/// E_{z~q_i}[log q_i(z) − log q_u(z)] with the spike at 0 as a point mass in both.
fn mc_kl(
    (mi, vi, gi): (f64, f64, f64),
    (mu, vu, gu): (f64, f64, f64),
    n: usize,
    rng: &mut ChaCha8Rng,
) -> (f64, f64) {
    let slab = Normal::new(mi, vi.sqrt()).unwrap();
    let logn = |z: f64, m: f64, v: f64| {
        -0.5 * ((2.0 * std::f64::consts::PI * v).ln() + (z - m).powi(2) / v)
    };
    let (mut s, mut s2) = (0.0, 0.0);
    for _ in 0..n {
        let term = if rng.random::<f64>() < gi {
            let z = slab.sample(rng);
            (gi.ln() + logn(z, mi, vi)) - (gu.ln() + logn(z, mu, vu))
        } else {
            ((1.0 - gi) / (1.0 - gu)).ln()
        };
        s += term;
        s2 += term * term;
    }
    let mean = s / n as f64;
    let var = (s2 / n as f64 - mean * mean).max(0.0);
    (mean, (var / n as f64).sqrt())
}

#[test]
fn closed_form_kl_matches_monte_carlo() {
    let mut rng = ChaCha8Rng::seed_from_u64(1234);
    let gammas = [
        (0.02, 0.5),
        (0.98, 0.3),
        (0.5, 0.97),
        (0.3, 0.05),
        (0.9, 0.9),
    ];
    for (k, &(gi, gu)) in gammas.iter().enumerate() {
        let p = (rng.random_range(-2.0..2.0), rng.random_range(0.2..2.0), gi);
        let q = (rng.random_range(-2.0..2.0), rng.random_range(0.2..2.0), gu);
        let exact = spike_slab_kl_scalar(p, q);
        let (est, se) = mc_kl(p, q, 200_000, &mut rng);
        assert!(
            (exact - est).abs() < 3.0 * se + 1e-9,
            "case {k}: closed form {exact} vs MC {est} ± {se}"
        );
        // The tensor implementation agrees with the scalar reference.
        let d = Device::flex();
        let one = |x: f64| t2(vec![x as f32], 1, 1, &d);
        let kt = spike_slab_kl(
            one(p.0),
            one(p.1.ln()),
            one(p.2),
            one(q.0),
            one(q.1.ln()),
            one(q.2),
        );
        let kt = tensor_to_vec(kt)[0] as f64;
        assert!(
            (kt - exact).abs() < 1e-3 * (1.0 + exact.abs()),
            "tensor {kt} vs {exact}"
        );
    }
}

#[test]
fn kl_of_identical_distributions_is_zero_and_positive_otherwise() {
    let d = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 64;
    let mu: Vec<f32> = (0..n).map(|_| rng.random_range(-3.0..3.0)).collect();
    let lv: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    let g: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
    let kl = spike_slab_kl(
        t2(mu.clone(), 4, 16, &d),
        t2(lv.clone(), 4, 16, &d),
        t2(g.clone(), 4, 16, &d),
        t2(mu.clone(), 4, 16, &d),
        t2(lv.clone(), 4, 16, &d),
        t2(g.clone(), 4, 16, &d),
    );
    for v in tensor_to_vec(kl) {
        assert!(v.abs() < 1e-5, "KL(q||q) = {v}");
    }
    let mu2: Vec<f32> = mu.iter().map(|m| m + 0.5).collect();
    let kl = spike_slab_kl(
        t2(mu, 4, 16, &d),
        t2(lv.clone(), 4, 16, &d),
        t2(g.clone(), 4, 16, &d),
        t2(mu2, 4, 16, &d),
        t2(lv, 4, 16, &d),
        t2(g, 4, 16, &d),
    );
    assert!(tensor_to_vec(kl).iter().all(|&v| v > 0.01));
}

#[test]
fn lambda_zero_slab_ignores_mu_and_sigma() {
    let d = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let eps = draw_noise(&mut rng, 8, 5, &d).eps;
    let a = sample_slab(
        Tensor::ones([8, 5], &d).mul_scalar(3.0),
        Tensor::ones([8, 5], &d).mul_scalar(2.0),
        eps.clone(),
        0.0,
    );
    let b = sample_slab(
        Tensor::ones([8, 5], &d).mul_scalar(-7.0),
        Tensor::ones([8, 5], &d).mul_scalar(-4.0),
        eps.clone(),
        0.0,
    );
    assert_eq!(tensor_to_vec(a.clone()), tensor_to_vec(b));
    assert_eq!(tensor_to_vec(a), tensor_to_vec(eps.clone()));
    // With λ = 1 the slab depends on μ, σ.
    let c = sample_slab(
        Tensor::ones([8, 5], &d).mul_scalar(3.0),
        Tensor::zeros([8, 5], &d),
        eps.clone(),
        1.0,
    );
    assert_ne!(tensor_to_vec(c), tensor_to_vec(eps));
}

#[test]
fn nonzero_fraction_approaches_gamma_as_c_grows() {
    let d = Device::flex();
    let n = 20_000;
    let gamma = 0.3f32;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let eta: Vec<f32> = (0..n).map(|_| rng.random()).collect();
    let err_at = |c: f32| {
        let t = spike_step(
            Tensor::ones([n, 1], &d).mul_scalar(gamma.ln()),
            t2(eta.clone(), n, 1, &d),
            c,
        );
        let frac = tensor_to_vec(t).iter().filter(|&&v| v > 1e-3).count() as f32 / n as f32;
        (frac - gamma).abs()
    };
    let (e1, e50, e1000) = (err_at(1.0), err_at(50.0), err_at(1000.0));
    assert!(e1 > e50 && e50 > e1000, "errors {e1} {e50} {e1000}");
    assert!(
        e1000 < 0.02,
        "fraction of non-zero draws at c = 1000 is off by {e1000}"
    );
}

#[test]
fn gradients_reach_encoder_decoder_pseudo_inputs_and_selector() {
    for selector in [SelectorKind::Paper, SelectorKind::AuthorsCode] {
        let d = Device::flex().autodiff();
        let mut cfg = TrainConfig::tiny(12);
        cfg.model.selector = selector;
        cfg.model.kind = ModelKind::Vsc;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let net = VscNet::new(&cfg.model, &mut rng, &d, None);
        let x: Vec<f32> = (0..16 * 12).map(|_| rng.random()).collect();
        let noise = draw_noise(&mut rng, 16, cfg.model.latent_dim, &d);
        // λ = 1: every parameter, incl. μ/σ heads, is on the path.
        let parts = net.vsc_loss(&cfg.model, t2(x, 16, 12, &d), &noise, 1.0, 50.0);
        let grads = GradientsParams::from_grads(parts.loss.backward(), &net);
        let nonzero2 = |p: &burn::module::Param<Tensor<2>>, name: &str| {
            let g = grads
                .get::<2>(p.id)
                .unwrap_or_else(|| panic!("{selector:?}: no gradient for {name}"));
            let s: f32 = tensor_to_vec(g).iter().map(|v| v.abs()).sum();
            assert!(
                s > 0.0 && s.is_finite(),
                "{selector:?}: gradient of {name} is {s}"
            );
        };
        nonzero2(&net.encoder.hidden.weight, "encoder.hidden");
        nonzero2(&net.encoder.mu.weight, "encoder.mu");
        nonzero2(&net.encoder.logvar.weight, "encoder.logvar");
        nonzero2(&net.encoder.spike.as_ref().unwrap().weight, "encoder.spike");
        nonzero2(&net.decoder.hidden.weight, "decoder.hidden");
        nonzero2(&net.decoder.mean.weight, "decoder.mean");
        nonzero2(
            &net.decoder.logvar.as_ref().unwrap().weight,
            "decoder.logvar",
        );
        nonzero2(net.pseudo_inputs.as_ref().unwrap(), "pseudo_inputs");
        nonzero2(&net.selector.as_ref().unwrap().weight, "selector");
        assert!(net.num_params() > 0);
    }
}

#[test]
fn baselines_produce_finite_losses_and_gradients() {
    for kind in [
        ModelKind::BetaVae { beta: 4.0 },
        ModelKind::BetaTcVae { beta: 6.0 },
    ] {
        let d = Device::flex().autodiff();
        let mut cfg = TrainConfig::tiny(12);
        cfg.model.kind = kind;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let net = VscNet::new(&cfg.model, &mut rng, &d, None);
        assert!(net.pseudo_inputs.is_none() && net.encoder.spike.is_none());
        let x: Vec<f32> = (0..16 * 12).map(|_| rng.random()).collect();
        let noise = draw_noise(&mut rng, 16, cfg.model.latent_dim, &d);
        let parts = host_trainer::train::model_loss(&net, &cfg, t2(x, 16, 12, &d), &noise, 0, 1000);
        let l: f32 = parts.loss.clone().into_scalar();
        assert!(l.is_finite(), "{kind:?} loss {l}");
        let grads = GradientsParams::from_grads(parts.loss.backward(), &net);
        assert!(grads.get::<2>(net.encoder.hidden.weight.id).is_some());
    }
}

#[test]
fn only_the_sigmoid_spike_head_can_switch_off_a_dim_that_is_on_everywhere() {
    // Spike bias +4: v > 0 for every input, so every dim starts on.
    let mut spike_grad = Vec::new();
    for head in [SpikeHead::Paper, SpikeHead::Sigmoid] {
        let d = Device::flex().autodiff();
        let mut cfg = TrainConfig::tiny(12);
        cfg.model.spike_bias_init = Some(4.0);
        cfg.model.spike_head = head;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let net = VscNet::new(&cfg.model, &mut rng, &d, None);
        let x: Vec<f32> = (0..16 * 12).map(|_| rng.random()).collect();
        let post = net.encoder.forward(t2(x.clone(), 16, 12, &d));
        let log_gamma = tensor_to_vec(post.log_gamma.unwrap());
        match head {
            SpikeHead::Paper => assert!(log_gamma.iter().all(|&g| g == 0.0)),
            // log sigmoid(v) for v ≈ 4: −0.018, below 0 but close.
            SpikeHead::Sigmoid => assert!(log_gamma.iter().all(|&g| g < 0.0 && g > -0.1)),
        }
        let noise = draw_noise(&mut rng, 16, cfg.model.latent_dim, &d);
        let parts = net.vsc_loss(&cfg.model, t2(x, 16, 12, &d), &noise, 1.0, 50.0);
        let grads = GradientsParams::from_grads(parts.loss.backward(), &net);
        let weight = &net.encoder.spike.as_ref().unwrap().weight;
        let s: f32 = grads
            .get::<2>(weight.id)
            .map_or(0.0, |g| tensor_to_vec(g).iter().map(|v| v.abs()).sum());
        spike_grad.push(s);
    }
    assert_eq!(
        spike_grad[0], 0.0,
        "paper head: gradient through −ReLU(−v) at v > 0"
    );
    assert!(
        spike_grad[1] > 0.0 && spike_grad[1].is_finite(),
        "sigmoid head: spike gradient {}",
        spike_grad[1]
    );
}

#[test]
fn fixed_prior_kl_is_eq6_against_a_standard_slab_and_alpha_with_no_sparsity_term() {
    let d = Device::flex().autodiff();
    let mut cfg = TrainConfig::tiny(12);
    cfg.model.prior = PriorKind::Fixed;
    cfg.model.spike_head = SpikeHead::Sigmoid;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let net = VscNet::new(&cfg.model, &mut rng, &d, None);
    assert!(net.pseudo_inputs.is_none() && net.selector.is_none());
    let (b, m, j) = (6, 12, cfg.model.latent_dim);
    let x: Vec<f32> = (0..b * m).map(|_| rng.random()).collect();
    let post = net.encoder.forward(t2(x.clone(), b, m, &d));
    let (kl, sparsity) = net.prior_terms(&cfg.model, t2(x.clone(), b, m, &d), &post, 100.0);
    let (mu, lv) = (tensor_to_vec(post.mu.clone()), tensor_to_vec(post.logvar));
    let g = tensor_to_vec(post.log_gamma.unwrap().exp());
    let alpha = f64::from(cfg.model.alpha);
    for (r, &got) in tensor_to_vec(kl).iter().enumerate() {
        let want: f64 = (r * j..(r + 1) * j)
            .map(|k| {
                let q = (f64::from(mu[k]), f64::from(lv[k]).exp(), f64::from(g[k]));
                spike_slab_kl_scalar(q, (0.0, 1.0, alpha))
            })
            .sum();
        assert!(
            (f64::from(got) - want).abs() < 1e-4 * want.abs().max(1.0),
            "row {r}: KL {got} vs eq. 6 {want}"
        );
    }
    assert!(tensor_to_vec(sparsity).iter().all(|&s| s == 0.0));
    // The whole objective still trains the spike head.
    let noise = draw_noise(&mut rng, b, j, &d);
    let parts = net.vsc_loss(&cfg.model, t2(x, b, m, &d), &noise, 1.0, 100.0);
    let grads = GradientsParams::from_grads(parts.loss.backward(), &net);
    let spike = &net.encoder.spike.as_ref().unwrap().weight;
    let s: f32 = tensor_to_vec(grads.get::<2>(spike.id).expect("spike head gradient"))
        .iter()
        .map(|v| v.abs())
        .sum();
    assert!(s > 0.0 && s.is_finite(), "spike head gradient {s}");
}

/// J·KL(Bernoulli(p) ‖ Bernoulli(α)) in f64.
fn sparsity_of(p: f64, alpha: f64, j: usize) -> f64 {
    j as f64 * (p * (p / alpha).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - alpha)).ln())
}

#[test]
fn posterior_sparsity_charges_each_examples_own_mean_gamma() {
    use host_trainer::model::SparsityTarget;
    let d = Device::flex().autodiff();
    let mut cfg = TrainConfig::tiny(12);
    cfg.model.spike_head = SpikeHead::Sigmoid;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let net = VscNet::new(&cfg.model, &mut rng, &d, None);
    let (b, m, j) = (5, 12, cfg.model.latent_dim);
    let alpha = f64::from(cfg.model.alpha);
    let x: Vec<f32> = (0..b * m).map(|_| rng.random()).collect();
    let post = net.encoder.forward(t2(x.clone(), b, m, &d));
    let g = tensor_to_vec(post.log_gamma.clone().unwrap().exp());
    let terms = |target| {
        let mut mc = cfg.model.clone();
        mc.sparsity = target;
        let (kl, s) = net.prior_terms(&mc, t2(x.clone(), b, m, &d), &post, 100.0);
        (tensor_to_vec(kl), tensor_to_vec(s))
    };
    let (kl_prior, s_prior) = terms(SparsityTarget::Prior);
    let (kl_post, s_post) = terms(SparsityTarget::Posterior);
    let (_, s_both) = terms(SparsityTarget::Both);
    assert_eq!(kl_prior, kl_post, "the KL term does not change");
    for r in 0..b {
        let own = g[r * j..(r + 1) * j]
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>()
            / j as f64;
        let want = sparsity_of(own, alpha, j);
        assert!(
            (f64::from(s_post[r]) - want).abs() < 1e-4 * want.max(1.0),
            "row {r}: {} vs J·KL({own}‖α) = {want}",
            s_post[r]
        );
        let sum = f64::from(s_prior[r]) + f64::from(s_post[r]);
        assert!((f64::from(s_both[r]) - sum).abs() < 1e-4 * sum.max(1.0));
    }
    // The excess variant charges only rows whose mean γ is above α, by the same amount.
    let mut high = cfg.model.clone();
    high.alpha = 0.5;
    let own_means: Vec<f64> = (0..b)
        .map(|r| {
            g[r * j..(r + 1) * j]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / j as f64
        })
        .collect();
    assert!(
        own_means.iter().any(|&m| m > 0.5) && own_means.iter().any(|&m| m < 0.5),
        "test needs rows on both sides of α = 0.5: {own_means:?}"
    );
    for (target, alpha) in [
        (SparsityTarget::Posterior, 0.5),
        (SparsityTarget::PosteriorExcess, 0.5),
    ] {
        high.sparsity = target;
        high.alpha = alpha;
        let (_, s) = net.prior_terms(&high, t2(x.clone(), b, m, &d), &post, 100.0);
        for (r, (&got, &own)) in tensor_to_vec(s).iter().zip(&own_means).enumerate() {
            let full = sparsity_of(own, 0.5, j);
            let want = if target == SparsityTarget::PosteriorExcess && own <= 0.5 {
                0.0
            } else {
                full
            };
            assert!(
                (f64::from(got) - want).abs() < 1e-4 * want.max(1.0),
                "{target:?} row {r}: {got} vs {want} (mean γ {own})"
            );
        }
    }
    // The count variant: ln((1 − α)/α) nats per unit of γ, summed over the dims.
    let mut count = cfg.model.clone();
    count.sparsity = SparsityTarget::PosteriorCount;
    count.alpha = 0.3;
    let (_, s) = net.prior_terms(&count, t2(x.clone(), b, m, &d), &post, 100.0);
    for (r, (&got, &own)) in tensor_to_vec(s).iter().zip(&own_means).enumerate() {
        let want = (0.7f64 / 0.3).ln() * own * j as f64;
        assert!(
            (f64::from(got) - want).abs() < 1e-4 * want.max(1.0),
            "row {r}: {got} vs {want}"
        );
    }
    // Rows differ in their own γ, so their charges differ (the prior's term need not).
    assert!(s_post.iter().any(|&s| (s - s_post[0]).abs() > 1e-6));
    // And the charge reaches the spike head: a step against it lowers the mean γ.
    let mut mc = cfg.model.clone();
    mc.sparsity = SparsityTarget::Posterior;
    let (_, s) = net.prior_terms(&mc, t2(x.clone(), b, m, &d), &post, 100.0);
    let grads = GradientsParams::from_grads(s.mean().backward(), &net);
    let bias = &net.encoder.spike.as_ref().unwrap().bias;
    let gb = tensor_to_vec(grads.get::<1>(bias.id).expect("spike bias gradient"));
    let mean_g = g.iter().map(|&v| f64::from(v)).sum::<f64>() / g.len() as f64;
    assert!(mean_g > alpha, "test needs γ̄ > α, got {mean_g}");
    assert!(
        gb.iter().all(|&v| v > 0.0),
        "gradient {gb:?} must push every γ down"
    );
}

#[test]
fn slab_mean_bias_init_sets_every_mu_bias_and_nothing_else() {
    let d = Device::flex();
    let mut cfg = TrainConfig::tiny(12);
    let plain = VscNet::new(&cfg.model, &mut ChaCha8Rng::seed_from_u64(3), &d, None);
    cfg.model.slab_mean_bias_init = Some(3.0);
    let net = VscNet::new(&cfg.model, &mut ChaCha8Rng::seed_from_u64(3), &d, None);
    let bias = tensor_to_vec(net.encoder.mu.bias.val());
    assert_eq!(bias, vec![3.0; cfg.model.latent_dim]);
    // The same random stream: every other parameter is the plain network's.
    assert_eq!(
        tensor_to_vec(net.encoder.mu.weight.val()),
        tensor_to_vec(plain.encoder.mu.weight.val())
    );
    assert_eq!(
        tensor_to_vec(net.decoder.hidden.weight.val()),
        tensor_to_vec(plain.decoder.hidden.weight.val())
    );
}

#[test]
fn spike_code_length_is_slab_kl_plus_bernoulli_kl_and_spike_entropy() {
    use host_trainer::model::SparsityTarget;
    use host_trainer::model::vsc::selector_weights;
    let d = Device::flex();
    let mut cfg = TrainConfig::tiny(12);
    cfg.model.spike_head = SpikeHead::Sigmoid;
    cfg.model.sparsity = SparsityTarget::SpikeCodeLength;
    cfg.model.alpha = 0.3;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let net = VscNet::new(&cfg.model, &mut rng, &d, None);
    let (b, m, j, u) = (4, 12, cfg.model.latent_dim, cfg.model.pseudo_inputs);
    let x: Vec<f32> = (0..b * m).map(|_| rng.random()).collect();
    let post = net.encoder.forward(t2(x.clone(), b, m, &d));
    let (kl, sparsity) = net.prior_terms(&cfg.model, t2(x.clone(), b, m, &d), &post, 100.0);
    let (mu, lv) = (
        tensor_to_vec(post.mu.clone()),
        tensor_to_vec(post.logvar.clone()),
    );
    let g = tensor_to_vec(post.log_gamma.clone().unwrap().exp());
    let prior = net.prior_slabs(&cfg.model, 100.0).unwrap();
    let (pm, plv) = (tensor_to_vec(prior.mu), tensor_to_vec(prior.logvar));
    let w = tensor_to_vec(selector_weights(
        net.selector.as_ref().unwrap(),
        cfg.model.selector,
        t2(x, b, m, &d),
    ));
    let alpha = 0.3f64;
    for r in 0..b {
        let (mut slab_part, mut bern_kl, mut entropy) = (0.0, 0.0, 0.0);
        for k in 0..j {
            let i = r * j + k;
            let (mi, vi, gi) = (f64::from(mu[i]), f64::from(lv[i]).exp(), f64::from(g[i]));
            for p in 0..u {
                let slab = spike_slab_kl_scalar(
                    (mi, vi, gi),
                    (
                        f64::from(pm[p * j + k]),
                        f64::from(plv[p * j + k]).exp(),
                        gi,
                    ),
                );
                slab_part += f64::from(w[r * u + p]) * slab;
            }
            bern_kl += gi * (gi / alpha).ln() + (1.0 - gi) * ((1.0 - gi) / (1.0 - alpha)).ln();
            entropy -= gi * gi.ln() + (1.0 - gi) * (1.0 - gi).ln();
        }
        let want_kl = slab_part + bern_kl;
        let got_kl = f64::from(tensor_to_vec(kl.clone())[r]);
        let got_s = f64::from(tensor_to_vec(sparsity.clone())[r]);
        assert!(
            (got_kl - want_kl).abs() < 1e-3 * want_kl.abs().max(1.0),
            "row {r}: KL {got_kl} vs {want_kl}"
        );
        assert!(
            (got_s - entropy).abs() < 1e-3 * entropy.max(1.0),
            "row {r}: H {got_s} vs {entropy}"
        );
        // Their spike parts add up to the code length Σ_j CE(γ_j, α).
        let ce: f64 = (r * j..(r + 1) * j)
            .map(|i| {
                let gi = f64::from(g[i]);
                gi * (1.0 / alpha).ln() + (1.0 - gi) * (1.0 / (1.0 - alpha)).ln()
            })
            .sum();
        let total = got_kl + got_s - slab_part;
        assert!(
            (total - ce).abs() < 1e-3 * ce.max(1.0),
            "row {r}: {total} vs code length {ce}"
        );
    }
}
