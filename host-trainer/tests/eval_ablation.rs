//! `vsc ablation` end to end on a tiny plan: trains every (step, seed), evaluates on the
//! Smiley test images, writes the table, JSON and figure, and skips finished runs.

use clap::Parser;
use host_trainer::cli::ablation::{AblationArgs, run};
use host_trainer::model::TrainConfig;
use host_trainer::smiley::{SMILEY_PIXELS, generate, write_set};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: AblationArgs,
}

fn args(argv: &[&str]) -> AblationArgs {
    Cli::try_parse_from(std::iter::once("ablation").chain(argv.iter().copied()))
        .unwrap()
        .args
}

#[test]
fn ablation_trains_each_step_and_seed_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let smiley = dir.path().join("smiley");
    write_set(&smiley, "train", &generate(200, 1)).unwrap();
    write_set(&smiley, "test", &generate(64, 2)).unwrap();
    let mut base = TrainConfig::tiny(SMILEY_PIXELS);
    base.model.likelihood = host_trainer::model::Likelihood::Bernoulli;
    base.checkpoint_every = 0;
    std::fs::write(
        dir.path().join("base.toml"),
        toml::to_string(&base).unwrap(),
    )
    .unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        r#"base = "base.toml"
cumulative = true
seeds = [0, 1]
[[step]]
id = "base"
name = "tiny"
[[step]]
id = "posterior"
name = "+ own-γ sparsity"
set = { "model.sparsity" = "posterior", "model.spike_head" = "sigmoid" }
[[step]]
id = "bvae"
name = "β-VAE β 2"
set = { "model.kind" = { type = "beta_vae", beta = 2.0 } }
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let (p, s, o) = (
        plan.to_str().unwrap(),
        smiley.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    // A step id that is not in the plan is an error before anything trains.
    let err = run(&args(&[p, "--smiley", s, "--out", o, "--only", "nope"])).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(!out.join("base").exists());

    run(&args(&[p, "--smiley", s, "--out", o, "--steps", "12"])).unwrap();
    for id in ["base", "posterior", "bvae"] {
        for seed in [0, 1] {
            let run_dir = out.join(id).join(format!("seed{seed}"));
            assert!(run_dir.join("model.bpk").exists(), "{id} seed {seed}");
            assert!(run_dir.join("metrics.json").exists());
        }
    }
    let meta: host_trainer::train::RunMeta =
        toml::from_str(&std::fs::read_to_string(out.join("posterior/seed1/config.toml")).unwrap())
            .unwrap();
    let cfg = meta.train;
    assert_eq!(cfg.seed, 1);
    assert_eq!(cfg.total_iters(), 12);
    assert_eq!(
        cfg.model.sparsity,
        host_trainer::model::SparsityTarget::Posterior
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ablation.json")).unwrap()).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 6);
    let summary = json["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 3);
    assert_eq!(
        summary[2]["dims_used"]["mean"], 8.0,
        "a β-VAE uses every dim"
    );
    let md = std::fs::read_to_string(out.join("ablation.md")).unwrap();
    assert_eq!(md.lines().count(), 5, "{md}");
    assert!(md.contains("| + own-γ sparsity | 2 |"), "{md}");
    assert!(out.join("ablation.png").exists());

    // Finished runs are reused: summarising again trains nothing and gives the same table.
    let before = std::fs::metadata(out.join("base/seed0/model.bpk"))
        .unwrap()
        .modified()
        .unwrap();
    run(&args(&[p, "--smiley", s, "--out", o, "--steps", "12"])).unwrap();
    run(&args(&[p, "--smiley", s, "--out", o, "--summarise-only"])).unwrap();
    let after = std::fs::metadata(out.join("base/seed0/model.bpk"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(
        std::fs::read_to_string(out.join("ablation.md")).unwrap(),
        md
    );
}
