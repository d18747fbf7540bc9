//! Ablation plans (`vsc ablation PLAN.toml`): a base training config and a list of steps,
//! each a set of config changes, run over several seeds and summarised as a table
//! (dims used, dims on per image, E2 gap, test ELBO) and a figure.
//!
//! A plan file:
//! ```toml
//! base = "vsc-paper.toml"      # relative to the plan file
//! cumulative = true            # each step keeps the changes of the steps before it
//! seeds = [0, 1, 2]
//! [[step]]
//! id = "paper"                 # run folder name: OUT/<id>/seed<k>
//! name = "paper schedule"
//! [[step]]
//! id = "no-warmup"
//! name = "+ no warm-up"
//! set = { warmup_iters = 0, ramp_iters = 0, main_iters = 10000 }
//! unset = ["lr_drop_step"]     # keys to remove (back to their defaults)
//! ```
//! Keys of `set` are paths into the TrainConfig, dotted for nested tables
//! (`"model.alpha" = 0.3`, `"model.kind" = { type = "beta_vae", beta = 4.0 }`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::mean_sd;
use crate::model::TrainConfig;

/// Errors reading or applying a plan; every message names the file and, where it
/// applies, the step.
#[derive(Debug, thiserror::Error)]
pub enum AblationError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}, step {step:?}: {message}")]
    Step {
        path: PathBuf,
        step: String,
        message: String,
    },
}

/// One step of a plan as written in the file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Folder name of the step's runs (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Row label in the table and figure.
    pub name: String,
    /// Config keys (dotted paths) to set.
    #[serde(default)]
    pub set: toml::Table,
    /// Config keys (dotted paths) to remove, so that their serde defaults apply.
    #[serde(default)]
    pub unset: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    base: PathBuf,
    #[serde(default)]
    cumulative: bool,
    #[serde(default = "default_seeds")]
    seeds: Vec<u64>,
    #[serde(rename = "step")]
    steps: Vec<StepSpec>,
}

fn default_seeds() -> Vec<u64> {
    vec![0, 1, 2]
}

/// A parsed plan with every step's complete training config.
#[derive(Clone, Debug)]
pub struct AblationPlan {
    pub path: PathBuf,
    pub cumulative: bool,
    pub seeds: Vec<u64>,
    pub steps: Vec<(StepSpec, TrainConfig)>,
}

/// Sets `value` at the dotted `key` of `table`, creating intermediate tables.
fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|s| !s.is_empty()).ok_or("empty key")?;
    let mut t = table;
    for p in parts {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("{key}: {p} is not a table"))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

/// Removes the dotted `key` (no error when it is absent).
fn unset_path(table: &mut toml::Table, key: &str) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|s| !s.is_empty()).ok_or("empty key")?;
    let mut t = table;
    for p in parts {
        match t.get_mut(p).and_then(toml::Value::as_table_mut) {
            Some(inner) => t = inner,
            None => return Ok(()),
        }
    }
    t.remove(last);
    Ok(())
}

impl AblationPlan {
    /// Reads a plan and its base config (relative to the plan's folder).
    pub fn from_file(path: &Path) -> Result<Self, AblationError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| AblationError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let parse_err = |p: &Path, e: &dyn std::fmt::Display| AblationError::Parse {
            path: p.to_path_buf(),
            message: e.to_string(),
        };
        let file: PlanFile = toml::from_str(&read(path)?).map_err(|e| parse_err(path, &e))?;
        let base_path = path.parent().unwrap_or(Path::new(".")).join(&file.base);
        let base: toml::Table =
            toml::from_str(&read(&base_path)?).map_err(|e| parse_err(&base_path, &e))?;
        Self::from_parts(path, base, file)
    }

    fn from_parts(path: &Path, base: toml::Table, file: PlanFile) -> Result<Self, AblationError> {
        let step_err = |step: &StepSpec, message: String| AblationError::Step {
            path: path.to_path_buf(),
            step: step.id.clone(),
            message,
        };
        if file.steps.is_empty() {
            return Err(AblationError::Parse {
                path: path.to_path_buf(),
                message: "no [[step]]".into(),
            });
        }
        if file.seeds.is_empty() {
            return Err(AblationError::Parse {
                path: path.to_path_buf(),
                message: "seeds is empty".into(),
            });
        }
        let mut steps = Vec::with_capacity(file.steps.len());
        let mut current = base.clone();
        for (k, step) in file.steps.into_iter().enumerate() {
            let id_ok = !step.id.is_empty()
                && step
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !id_ok {
                return Err(step_err(
                    &step,
                    "id must be letters, digits, '-', '_' or '.'".into(),
                ));
            }
            if steps.iter().any(|(s, _): &(StepSpec, _)| s.id == step.id) {
                return Err(step_err(&step, "duplicate id".into()));
            }
            let mut table = if file.cumulative {
                current.clone()
            } else {
                base.clone()
            };
            for (key, value) in &step.set {
                set_path(&mut table, key, value.clone()).map_err(|m| step_err(&step, m))?;
            }
            for key in &step.unset {
                unset_path(&mut table, key).map_err(|m| step_err(&step, m))?;
            }
            let cfg: TrainConfig =
                toml::Value::Table(table.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        step_err(&step, format!("step {k} gives no valid config: {e}"))
                    })?;
            current = table;
            steps.push((step, cfg));
        }
        Ok(Self {
            path: path.to_path_buf(),
            cumulative: file.cumulative,
            seeds: file.seeds,
            steps,
        })
    }
}

/// What one trained and evaluated run contributes to the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    pub id: String,
    pub name: String,
    pub seed: u64,
    pub run_dir: String,
    /// Dims on (γ > 0.5) for at least 1 % of the test images.
    pub dims_used: usize,
    /// Mean over test images of the dims on.
    pub dims_per_image: f64,
    /// E2 top1−top2 |corr| gap (S ⊙ V vs the sparse code or μ).
    pub gap: f64,
    /// The gap between magnitudes, as the authors' notebook computes it.
    pub gap_magnitudes: Option<f64>,
    pub test_elbo: f64,
}

/// Mean and sd over seeds of one column for one step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

/// One step's summary over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    pub id: String,
    pub name: String,
    pub seeds: usize,
    pub dims_used: MeanSd,
    pub dims_per_image: MeanSd,
    /// `dims_per_image / dims_used` per run, averaged: the share of its used dims an image
    /// switches on.
    pub share_on: MeanSd,
    pub gap: MeanSd,
    pub gap_magnitudes: Option<MeanSd>,
    pub test_elbo: MeanSd,
}

fn stat(values: &[f64]) -> MeanSd {
    let (mean, sd) = mean_sd(values);
    MeanSd { mean, sd }
}

/// Summaries in step order (steps without rows are left out).
pub fn summarise(steps: &[(String, String)], rows: &[AblationRow]) -> Vec<StepSummary> {
    steps
        .iter()
        .filter_map(|(id, name)| {
            let r: Vec<&AblationRow> = rows.iter().filter(|r| &r.id == id).collect();
            if r.is_empty() {
                return None;
            }
            let col =
                |f: &dyn Fn(&AblationRow) -> f64| stat(&r.iter().map(|x| f(x)).collect::<Vec<_>>());
            let mags: Vec<f64> = r.iter().filter_map(|x| x.gap_magnitudes).collect();
            Some(StepSummary {
                id: id.clone(),
                name: name.clone(),
                seeds: r.len(),
                dims_used: col(&|x| x.dims_used as f64),
                dims_per_image: col(&|x| x.dims_per_image),
                share_on: col(&|x| x.dims_per_image / (x.dims_used.max(1) as f64)),
                gap: col(&|x| x.gap),
                gap_magnitudes: (mags.len() == r.len()).then(|| stat(&mags)),
                test_elbo: col(&|x| x.test_elbo),
            })
        })
        .collect()
}

fn pm(v: MeanSd, decimals: usize) -> String {
    format!("{:.*} ± {:.*}", decimals, v.mean, decimals, v.sd)
}

/// Markdown table: one row per step with mean ± sd over seeds, and the per-seed values.
pub fn markdown_table(summaries: &[StepSummary], rows: &[AblationRow]) -> String {
    let mut out = String::from(
        "| step | seeds | dims used | on per image | share on | gap | gap (magnitudes) | test ELBO | per seed: used / on, gap |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in summaries {
        let per_seed: Vec<String> = rows
            .iter()
            .filter(|r| r.id == s.id)
            .map(|r| format!("{} / {:.1}, {:.3}", r.dims_used, r.dims_per_image, r.gap))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.name,
            s.seeds,
            pm(s.dims_used, 1),
            pm(s.dims_per_image, 1),
            pm(s.share_on, 2),
            pm(s.gap, 3),
            s.gap_magnitudes.map_or("–".into(), |g| pm(g, 3)),
            pm(s.test_elbo, 1),
            per_seed.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> toml::Table {
        toml::from_str(&toml::to_string(&TrainConfig::tiny(16)).unwrap()).unwrap()
    }

    fn plan(text: &str) -> Result<AblationPlan, AblationError> {
        let file: PlanFile = toml::from_str(text).unwrap();
        AblationPlan::from_parts(Path::new("plan.toml"), base(), file)
    }

    #[test]
    fn cumulative_steps_keep_earlier_changes_and_independent_ones_do_not() {
        let text = r#"
            base = "x.toml"
            cumulative = true
            [[step]]
            id = "a"
            name = "base"
            [[step]]
            id = "b"
            name = "+ alpha"
            set = { "model.alpha" = 0.3, lr_drop_step = 5 }
            [[step]]
            id = "c"
            name = "+ head"
            set = { "model.spike_head" = "sigmoid" }
            unset = ["lr_drop_step"]
            [[step]]
            id = "d"
            name = "beta-vae"
            set = { "model.kind" = { type = "beta_vae", beta = 4.0 } }
        "#;
        let p = plan(text).unwrap();
        let tiny = TrainConfig::tiny(16);
        assert_eq!(p.steps[0].1, tiny);
        assert_eq!(p.steps[1].1.model.alpha, 0.3);
        assert_eq!(p.steps[1].1.lr_drop_step, Some(5));
        let c = &p.steps[2].1;
        assert_eq!((c.model.alpha, c.lr_drop_step), (0.3, None));
        assert_eq!(c.model.spike_head, crate::model::SpikeHead::Sigmoid);
        assert_eq!(
            p.steps[3].1.model.kind,
            crate::model::ModelKind::BetaVae { beta: 4.0 }
        );
        assert_eq!(p.seeds, vec![0, 1, 2]);

        let independent = plan(&text.replace("cumulative = true", "cumulative = false")).unwrap();
        let c = &independent.steps[2].1;
        assert_eq!(c.model.alpha, tiny.model.alpha, "no carry-over");
        assert_eq!(c.model.spike_head, crate::model::SpikeHead::Sigmoid);
    }

    #[test]
    fn bad_steps_are_named_in_the_error() {
        let err = plan(
            r#"base = "x"
            [[step]]
            id = "ok"
            name = "fine"
            [[step]]
            id = "bad"
            name = "typo"
            set = { "model.alpha" = "high" }"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("plan.toml") && err.contains("\"bad\""),
            "{err}"
        );
        let err = plan(
            r#"base = "x"
            [[step]]
            id = "a b"
            name = "space""#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("id must be"), "{err}");
        let err = plan(
            r#"base = "x"
            [[step]]
            id = "a"
            name = "x"
            [[step]]
            id = "a"
            name = "y""#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        let err = plan(
            r#"base = "x"
            [[step]]
            id = "a"
            name = "x"
            set = { "lr.inner" = 1 }"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a table"), "{err}");
    }

    #[test]
    fn summary_is_mean_and_sd_over_seeds() {
        let row = |id: &str, seed, used, on: f64, gap, elbo| AblationRow {
            id: id.into(),
            name: id.into(),
            seed,
            run_dir: String::new(),
            dims_used: used,
            dims_per_image: on,
            gap,
            gap_magnitudes: Some(gap / 2.0),
            test_elbo: elbo,
        };
        let rows = vec![
            row("a", 0, 20, 10.0, 0.2, -30.0),
            row("a", 1, 22, 11.0, 0.4, -32.0),
            row("b", 0, 10, 2.0, 0.5, -40.0),
        ];
        let steps = vec![
            ("a".to_string(), "first".to_string()),
            ("missing".into(), "never run".into()),
            ("b".into(), "second".into()),
        ];
        let s = summarise(&steps, &rows);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].seeds, 2);
        assert!((s[0].dims_used.mean - 21.0).abs() < 1e-12);
        assert!((s[0].gap.sd - 0.02f64.sqrt()).abs() < 1e-12);
        assert!((s[0].share_on.mean - 0.5).abs() < 1e-12);
        assert_eq!(s[1].gap.sd, 0.0);
        let md = markdown_table(&s, &rows);
        assert_eq!(md.lines().count(), 4);
        assert!(md.contains("| first | 2 | 21.0 ± 1.4 |"), "{md}");
        assert!(md.contains("20 / 10.0, 0.200; 22 / 11.0, 0.400"), "{md}");
    }
}

#[cfg(test)]
mod plan_files {
    use super::*;

    fn config(name: &str) -> TrainConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs/smiley")
            .join(name);
        toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn every_smiley_plan_and_config_loads_and_the_late_recipe_is_its_plan_row() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/smiley");
        let mut plans = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains("[[step]]") {
                let plan = AblationPlan::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!plan.steps.is_empty(), "{name}");
                plans.push((name, plan));
            } else {
                let _: TrainConfig =
                    toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        assert!(plans.len() >= 3, "compare, ablation and sparse plans");
        let sparse = &plans.iter().find(|(n, _)| n == "sparse.toml").unwrap().1;
        // The recipes' files are their plan rows, so either command reproduces the README.
        for (id, file) in [
            ("late-scl-a0.3-l2-0.005", "vsc-late-sparse.toml"),
            (
                "late6k-scl-a0.35-l2-0.005-rate0.55-w20",
                "vsc-per-image.toml",
            ),
        ] {
            let (_, row) = sparse
                .steps
                .iter()
                .find(|(step, _)| step.id == id)
                .unwrap_or_else(|| panic!("the plan row {id}"));
            assert_eq!(*row, config(file), "{file}");
        }
    }

    #[test]
    fn the_ablation_goes_from_the_papers_schedule_to_vsc_toml() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/smiley/ablation.toml");
        let plan = AblationPlan::from_file(&path).unwrap();
        assert!(plan.cumulative);
        assert_eq!(plan.seeds, vec![0, 1, 2]);
        assert_eq!(plan.steps.len(), 6, "the paper's schedule and five changes");
        assert_eq!(plan.steps[0].1, config("vsc-paper.toml"));
        let (first, last) = (&plan.steps[0].1, &plan.steps[5].1);
        assert_eq!(*last, config("vsc.toml"));
        // Every run has the same budget and the same step sizes until its own change.
        for (step, cfg) in &plan.steps {
            assert_eq!(cfg.total_iters(), first.total_iters(), "{}", step.id);
        }
        let no_warmup = &plan.steps[1].1;
        for step in [0, 3249, 3250, 9999] {
            assert_eq!(no_warmup.lr_at(step), first.lr_at(step), "step {step}");
            assert_eq!(no_warmup.lambda_at(step), 1.0);
        }
        // Each step changes only its own keys of the previous config.
        let flat = |c: &TrainConfig| -> std::collections::BTreeMap<String, String> {
            let v: toml::Table = toml::from_str(&toml::to_string(c).unwrap()).unwrap();
            let mut out = std::collections::BTreeMap::new();
            for (k, val) in v {
                match val {
                    toml::Value::Table(t) => out.extend(
                        t.into_iter()
                            .map(|(k2, v2)| (format!("{k}.{k2}"), v2.to_string())),
                    ),
                    other => {
                        out.insert(k, other.to_string());
                    }
                }
            }
            out
        };
        let changed: Vec<Vec<String>> = plan
            .steps
            .windows(2)
            .map(|w| {
                let (a, b) = (flat(&w[0].1), flat(&w[1].1));
                let mut keys: Vec<String> = a
                    .keys()
                    .chain(b.keys())
                    .filter(|k| a.get(*k) != b.get(*k))
                    .cloned()
                    .collect();
                keys.sort();
                keys.dedup();
                keys
            })
            .collect();
        assert_eq!(
            changed,
            vec![
                vec!["lr_drop_step", "main_iters", "ramp_iters", "warmup_iters"],
                vec!["model.spike_bias_init"],
                vec!["model.spike_head"],
                vec!["model.alpha"],
                vec!["lr_after", "lr_drop_step"],
            ]
        );
    }
}
