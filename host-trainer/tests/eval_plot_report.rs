//! Figures and the HTML report. Set `EVAL_PLOT_DIR` to keep the PNGs for inspection.

use std::path::{Path, PathBuf};

use host_trainer::plot::{
    ErrorPanel, ErrorPoint, Heatmap, SignalPanel, Trace, XAxis, bar_chart, confusion_matrix,
    errorbar_panels, heatmap, image_grid, signal_grid,
};

fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("EVAL_PLOT_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            (None, PathBuf::from(d))
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert!(
        bytes.len() > 2000,
        "{} is suspiciously small",
        path.display()
    );
    assert!(
        !path.with_extension("tmp.png").exists(),
        "temp file left behind"
    );
}

#[test]
fn every_figure_kind_renders_a_png() {
    let (_keep, dir) = out_dir();
    let j = 60;
    let classes: Vec<String> = [
        "walking",
        "upstairs",
        "downstairs",
        "sitting",
        "standing",
        "laying",
    ]
    .map(String::from)
    .to_vec();
    let dims: Vec<String> = (0..j).map(|d| format!("z{d}")).collect();
    let values: Vec<Vec<f64>> = (0..j)
        .map(|d| {
            (0..classes.len())
                .map(|c| {
                    if d % 7 == c {
                        0.9
                    } else {
                        0.05 * (d % 3) as f64
                    }
                })
                .collect()
        })
        .collect();
    let p = dir.join("heatmap.png");
    heatmap(
        &p,
        &Heatmap {
            title: "mean spike probability per activity",
            values: &values,
            row_labels: &dims,
            col_labels: &classes,
            row_axis: "latent dim",
            col_axis: "activity",
            vmin: 0.0,
            vmax: 1.0,
            annotate_decimals: None,
        },
    )
    .unwrap();
    assert_png(&p);

    let sources: Vec<String> = host_trainer::smiley::FEATURES
        .iter()
        .map(|f| f.name.to_string())
        .collect();
    let corr: Vec<Vec<f64>> = (0..18)
        .map(|s| (0..j).map(|l| if l == s { 0.8 } else { 0.02 }).collect())
        .collect();
    let p = dir.join("corr.png");
    heatmap(
        &p,
        &Heatmap {
            title: "|corr| sources × latents",
            values: &corr,
            row_labels: &sources,
            col_labels: &dims,
            row_axis: "source",
            col_axis: "latent",
            vmin: 0.0,
            vmax: 1.0,
            annotate_decimals: None,
        },
    )
    .unwrap();
    assert_png(&p);

    let confusion: Vec<Vec<u64>> = (0..6)
        .map(|t| (0..6).map(|q| if t == q { 90 } else { 2 }).collect())
        .collect();
    let p = dir.join("confusion.png");
    confusion_matrix(&p, "probe on γ: test subjects", &confusion, &classes).unwrap();
    assert_png(&p);

    let sig: Vec<Vec<f32>> = (0..3)
        .map(|k| {
            (0..128)
                .map(|i| (i as f32 / 8.0 + k as f32).sin() + k as f32 * 0.3)
                .collect()
        })
        .collect();
    let panels: Vec<SignalPanel> = (0..4)
        .map(|i| SignalPanel {
            title: format!("sample {i}"),
            traces: ["acc x", "acc y", "acc z"]
                .iter()
                .zip(&sig)
                .map(|(n, v)| Trace { name: n, values: v })
                .collect(),
        })
        .collect();
    let p = dir.join("signals.png");
    signal_grid(
        &p,
        "conditional generation",
        &panels,
        2,
        XAxis::time(50.0),
        "acc (g)",
    )
    .unwrap();
    assert_png(&p);

    let alpha = [0.5, 0.2, 0.1, 0.05, 0.01].map(|a: f64| ErrorPoint {
        x: a,
        mean: -100.0 + 10.0 * a.ln(),
        err: 3.0,
    });
    let beta = [1.0, 2.0, 4.0, 8.0].map(|b: f64| ErrorPoint {
        x: b,
        mean: -100.0 - 5.0 * b,
        err: 2.0,
    });
    let p = dir.join("elbo.png");
    errorbar_panels(
        &p,
        "E1: test ELBO",
        &[
            ErrorPanel {
                title: "VSC",
                x_label: "α",
                y_label: "test ELBO (nats)",
                log_x: true,
                points: &alpha,
            },
            ErrorPanel {
                title: "β-VAE",
                x_label: "β",
                y_label: "test ELBO (nats)",
                log_x: true,
                points: &beta,
            },
        ],
    )
    .unwrap();
    assert_png(&p);

    let p = dir.join("bars.png");
    bar_chart(
        &p,
        "mean γ per dim",
        "latent dim",
        "mean γ",
        &values.iter().map(|r| r[0]).collect::<Vec<_>>(),
        Some(0.5),
    )
    .unwrap();
    assert_png(&p);

    let set = host_trainer::smiley::generate(16, 2);
    let p = dir.join("smiley.png");
    image_grid(
        &p,
        &set.images,
        32,
        8,
        3,
        &["first".into(), "second".into()],
    )
    .unwrap();
    assert_png(&p);
}

#[test]
fn bad_figure_input_is_an_error_not_a_panic() {
    let (_keep, dir) = out_dir();
    let ragged = vec![vec![0.0, 1.0], vec![0.5]];
    let err = heatmap(
        &dir.join("bad.png"),
        &Heatmap {
            title: "",
            values: &ragged,
            row_labels: &[],
            col_labels: &[],
            row_axis: "",
            col_axis: "",
            vmin: 0.0,
            vmax: 1.0,
            annotate_decimals: None,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("bad.png"), "{err}");
    assert!(image_grid(&dir.join("bad2.png"), &[0.0; 10], 32, 4, 2, &[]).is_err());
}

#[test]
fn base64_matches_rfc4648_vectors() {
    use host_trainer::report::base64;
    let cases = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in cases {
        assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
    }
}

#[test]
fn report_inlines_figures_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let set = host_trainer::smiley::generate(4, 0);
    image_grid(&run.join("faces.png"), &set.images, 32, 4, 2, &[]).unwrap();
    std::fs::write(
        run.join("metrics.json"),
        r#"{"model": "vsc <J=8>", "test_elbo": {"elbo": -12.5}, "probes": [{"features": "gamma", "accuracy": 0.91}],
            "figures": {"faces.png": "four faces"}}"#,
    )
    .unwrap();
    let out = dir.path().join("report.html");
    host_trainer::report::write_report("test report", std::slice::from_ref(&run), &out).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("data:image/png;base64,iVBORw0KGgo"),
        "PNG not inlined"
    );
    assert!(html.contains("four faces (faces.png)"));
    assert!(html.contains("vsc &lt;J=8&gt;"), "text is escaped");
    assert!(
        html.contains("<th>features</th>") && html.contains("0.9100"),
        "records table"
    );
    assert!(
        !html.contains("src=\"faces.png\""),
        "no external references"
    );
    // A broken metrics.json is an error naming the file.
    std::fs::write(run.join("metrics.json"), "{").unwrap();
    let err = host_trainer::report::render_report("x", std::slice::from_ref(&run)).unwrap_err();
    assert!(err.to_string().contains("metrics.json"), "{err}");
}
