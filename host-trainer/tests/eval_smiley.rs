//! Smiley generator: presence statistics, ground truth consistency, and that each
//! source feature moves exactly the pixels it should.

use host_trainer::smiley::{
    FEATURES, N_GROUPS, N_SOURCES, SMILEY_PIXELS, SMILEY_SIDE_PX, SmileyGroup, SmileyParams,
    generate, render,
};

/// Pixels (col, row) that group `g` changes when drawn alone on the bare face.
fn part(p: &SmileyParams, g: SmileyGroup) -> Vec<(f64, f64)> {
    let mut only = *p;
    only.present = [false; N_GROUPS];
    let bare = render(&only);
    only.present[g as usize] = true;
    let with = render(&only);
    (0..SMILEY_PIXELS)
        .filter(|&i| bare[i] != with[i])
        .map(|i| ((i % SMILEY_SIDE_PX) as f64, (i / SMILEY_SIDE_PX) as f64))
        .collect()
}

fn centroid(px: &[(f64, f64)]) -> (f64, f64) {
    assert!(!px.is_empty(), "the part draws no pixels");
    let n = px.len() as f64;
    (
        px.iter().map(|p| p.0).sum::<f64>() / n,
        px.iter().map(|p| p.1).sum::<f64>() / n,
    )
}

fn extent(px: &[(f64, f64)], axis_y: bool) -> f64 {
    let v: Vec<f64> = px.iter().map(|p| if axis_y { p.1 } else { p.0 }).collect();
    v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - v.iter().cloned().fold(f64::INFINITY, f64::min)
}

fn min_row(px: &[(f64, f64)]) -> f64 {
    px.iter().map(|p| p.1).fold(f64::INFINITY, f64::min)
}

/// Width (in pixels) of the row `row` of a part.
fn row_width(px: &[(f64, f64)], row: f64) -> usize {
    px.iter().filter(|p| p.1 == row).count()
}

fn base() -> SmileyParams {
    let mut p = SmileyParams::mean_all_present();
    // A smaller hat so that moving or growing it never runs off the canvas or into the face.
    p.values_px[8] = 5.0; // hat_y (bottom edge)
    p.values_px[10] = 1.0; // hat_height
    p.values_px[12] = 1.0; // hat_top_height
    p
}

fn with(p: &SmileyParams, source: usize, delta: f32) -> SmileyParams {
    let mut q = *p;
    q.values_px[source] += delta;
    q
}

#[test]
fn group_presence_rates_are_one_half_and_independent() {
    let n = 4000;
    let set = generate(n, 7);
    // Binomial(4000, 0.5): sd of the rate 0.0079; 5 sd bounds.
    let tol = 5.0 * (0.25f64 / n as f64).sqrt();
    let present = |i: usize, g: SmileyGroup| set.presence[i * N_SOURCES + g.sources().start] == 1.0;
    for g in SmileyGroup::ALL {
        let rate = (0..n).filter(|&i| present(i, g)).count() as f64 / n as f64;
        assert!(
            (rate - 0.5).abs() < tol,
            "{} present in {rate} of images",
            g.name()
        );
    }
    // Independence: each pair together in a quarter of the images (sd 0.0068).
    let tol2 = 5.0 * (0.25 * 0.75 / n as f64).sqrt();
    for a in 0..N_GROUPS {
        for b in a + 1..N_GROUPS {
            let (ga, gb) = (SmileyGroup::ALL[a], SmileyGroup::ALL[b]);
            let both =
                (0..n).filter(|&i| present(i, ga) && present(i, gb)).count() as f64 / n as f64;
            assert!(
                (both - 0.25).abs() < tol2,
                "{} & {}: {both}",
                ga.name(),
                gb.name()
            );
        }
    }
}

#[test]
fn ground_truth_is_consistent_with_groups_and_spreads() {
    let n = 3000;
    let set = generate(n, 11);
    assert_eq!(set.images.len(), n * SMILEY_PIXELS);
    assert!(
        set.images.iter().all(|&v| v == 0.0 || v == 1.0),
        "images are not binary"
    );
    for i in 0..n {
        for g in SmileyGroup::ALL {
            let r = g.sources();
            let s0 = set.presence[i * N_SOURCES + r.start];
            for s in r {
                assert_eq!(
                    set.presence[i * N_SOURCES + s],
                    s0,
                    "presence differs inside group {}",
                    g.name()
                );
                if s0 == 0.0 {
                    assert_eq!(
                        set.values[i * N_SOURCES + s],
                        0.0,
                        "absent feature {s} has a value"
                    );
                }
            }
        }
    }
    // V's spread over present rows matches the feature's sd (sample of ~1500: ±15 %).
    for (s, f) in FEATURES.iter().enumerate() {
        let vals: Vec<f64> = (0..n)
            .filter(|&i| set.presence[i * N_SOURCES + s] == 1.0)
            .map(|i| f64::from(set.values[i * N_SOURCES + s]))
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let sd =
            (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (vals.len() - 1) as f64).sqrt();
        assert!(
            mean.abs() < 0.15 * f64::from(f.sd_px),
            "{}: mean offset {mean}",
            f.name
        );
        let ratio = sd / f64::from(f.sd_px);
        assert!(
            (0.85..1.15).contains(&ratio),
            "{}: sd {sd} vs {}",
            f.name,
            f.sd_px
        );
    }
}

#[test]
fn same_seed_same_set_other_seed_other_set() {
    assert_eq!(generate(50, 3), generate(50, 3));
    assert_ne!(generate(50, 3).images, generate(50, 4).images);
}

#[test]
fn absent_hat_and_bow_tie_leave_the_margins_empty() {
    let n = 1000;
    let set = generate(n, 5);
    let face_top_row = 6;
    let face_bottom_row = 25;
    let (mut hats, mut ties) = (0, 0);
    for i in 0..n {
        let img = set.image(i);
        let ink = |rows: std::ops::Range<usize>| {
            rows.flat_map(|r| (0..SMILEY_SIDE_PX).map(move |c| (r, c)))
                .any(|(r, c)| img[r * SMILEY_SIDE_PX + c] > 0.0)
        };
        let hat = set.presence[i * N_SOURCES + SmileyGroup::Hat.sources().start] == 1.0;
        let tie = set.presence[i * N_SOURCES + SmileyGroup::BowTie.sources().start] == 1.0;
        assert_eq!(
            ink(0..face_top_row),
            hat,
            "image {i}: hat present = {hat} but ink above the face = {}",
            !hat
        );
        assert_eq!(
            ink(face_bottom_row + 1..SMILEY_SIDE_PX),
            tie,
            "image {i}: bow tie {tie}"
        );
        hats += usize::from(hat);
        ties += usize::from(tie);
    }
    assert!(hats > 0 && ties > 0);
}

#[test]
fn absent_eyes_and_mouth_leave_the_face_whole() {
    let p = SmileyParams {
        present: [false; N_GROUPS],
        ..SmileyParams::mean_all_present()
    };
    let img = render(&p);
    // The face is a filled disc of radius 10: about π·100 ≈ 314 pixels and no hole.
    let ink = img.iter().filter(|&&v| v > 0.0).count();
    assert!((300..330).contains(&ink), "face has {ink} pixels");
    for g in [SmileyGroup::Eyes, SmileyGroup::Mouth] {
        let holes = part(&SmileyParams::mean_all_present(), g);
        assert!(
            holes.len() >= 4,
            "{} cut only {} pixels",
            g.name(),
            holes.len()
        );
        // Holes: pixels that were ink and are now background.
        let mut q = p;
        q.present[g as usize] = true;
        let with = render(&q);
        for (x, y) in holes {
            let i = y as usize * SMILEY_SIDE_PX + x as usize;
            assert_eq!(
                (img[i], with[i]),
                (1.0, 0.0),
                "{} pixel ({x},{y}) is not a hole in the face",
                g.name()
            );
        }
    }
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 0.25, "{what}: got {got}, want {want}");
}

#[test]
fn eye_features_move_the_eye_holes() {
    let p = base();
    let g = SmileyGroup::Eyes;
    let (x0, y0) = centroid(&part(&p, g));
    let (x1, y1) = centroid(&part(&with(&p, 0, 2.0), g));
    assert_close(y1 - y0, 2.0, "eyes_y moves the eyes down");
    assert_close(x1 - x0, 0.0, "eyes_y keeps x");
    let spread = |px: &[(f64, f64)]| {
        px.iter().map(|p| (p.0 + 0.5 - 16.0).abs()).sum::<f64>() / px.len() as f64
    };
    let d = spread(&part(&with(&p, 1, 2.0), g)) - spread(&part(&p, g));
    assert_close(d, 1.0, "eyes_separation +2 moves each eye out by 1");
    assert!(
        part(&with(&p, 2, 1.0), g).len() > part(&p, g).len() + 4,
        "eyes_radius grows the holes"
    );
}

#[test]
fn mouth_features_move_the_mouth_hole() {
    let p = base();
    let g = SmileyGroup::Mouth;
    let m = part(&p, g);
    let (x0, y0) = centroid(&m);
    let (_, y1) = centroid(&part(&with(&p, 3, 2.0), g));
    assert_close(y1 - y0, 2.0, "mouth_y");
    let (x1, _) = centroid(&part(&with(&p, 4, 2.0), g));
    assert_close(x1 - x0, 2.0, "mouth_x");
    // Height: measured on the central columns, away from the side holes.
    let central = |q: &SmileyParams| -> Vec<(f64, f64)> {
        part(q, g)
            .into_iter()
            .filter(|pt| (pt.0 + 0.5 - 16.0).abs() < 2.0)
            .collect()
    };
    assert_close(
        extent(&central(&with(&p, 5, 2.0)), true) - extent(&central(&p), true),
        2.0,
        "mouth_height",
    );
    assert_close(
        extent(&part(&with(&p, 6, 2.0), g), false) - extent(&m, false),
        2.0,
        "mouth_length",
    );
    // Side holes: the pixels beyond the mouth rectangle's ends.
    let half_len = f64::from(p.values_px[6]) / 2.0;
    let sides = |q: &SmileyParams| {
        let mx = f64::from(q.values_px[4]);
        let px: Vec<(f64, f64)> = part(q, g)
            .into_iter()
            .filter(|pt| (pt.0 + 0.5 - mx).abs() > half_len + 0.01)
            .collect();
        centroid(&px)
    };
    let (sx0, sy0) = sides(&p);
    let (sx1, sy1) = sides(&with(&p, 7, 1.0));
    assert_close(sy1 - sy0, 1.0, "mouth_sides_y moves the side holes");
    assert_close(sx1 - sx0, 0.0, "mouth_sides_y keeps them at the ends");
    assert_close(
        centroid(&part(&with(&p, 7, 1.0), g)).0 - x0,
        0.0,
        "symmetry",
    );
}

#[test]
fn hat_features_move_the_hat() {
    let p = base();
    let g = SmileyGroup::Hat;
    let h = part(&p, g);
    let (x0, y0) = centroid(&h);
    let (x1, y1) = centroid(&part(&with(&p, 8, -2.0), g));
    assert_close(y1 - y0, -2.0, "hat_y");
    assert_close(x1 - x0, 0.0, "hat_y keeps x");
    assert_close(centroid(&part(&with(&p, 9, 2.0), g)).0 - x0, 2.0, "hat_x");
    // Bottom edge fixed: a taller brim or crown raises the hat's top.
    assert_close(
        min_row(&part(&with(&p, 10, 1.0), g)) - min_row(&h),
        -1.0,
        "hat_height",
    );
    assert_close(
        min_row(&part(&with(&p, 12, 1.0), g)) - min_row(&h),
        -1.0,
        "hat_top_height",
    );
    let bottom = h.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let top = min_row(&h);
    let wide = part(&with(&p, 11, 2.0), g);
    assert_eq!(
        row_width(&wide, bottom),
        row_width(&h, bottom) + 2,
        "hat_width widens the brim"
    );
    assert_eq!(
        row_width(&wide, top),
        row_width(&h, top),
        "hat_width keeps the crown"
    );
    let crown = part(&with(&p, 13, 2.0), g);
    assert_eq!(
        row_width(&crown, top),
        row_width(&h, top) + 2,
        "hat_top_width widens the crown"
    );
    assert_eq!(
        row_width(&crown, bottom),
        row_width(&h, bottom),
        "hat_top_width keeps the brim"
    );
}

#[test]
fn bow_tie_features_move_the_bow_tie() {
    let p = base();
    let g = SmileyGroup::BowTie;
    let b = part(&p, g);
    let (x0, y0) = centroid(&b);
    let (x1, y1) = centroid(&part(&with(&p, 14, 1.0), g));
    assert_close(y1 - y0, 1.0, "bowtie_y");
    assert_close(x1 - x0, 0.0, "bowtie_y keeps x");
    assert_close(
        centroid(&part(&with(&p, 15, 2.0), g)).0 - x0,
        2.0,
        "bowtie_x",
    );
    assert!(
        extent(&part(&with(&p, 16, 2.0), g), true) >= extent(&b, true) + 1.5,
        "bowtie_height"
    );
    assert_close(
        extent(&part(&with(&p, 17, 2.0), g), false) - extent(&b, false),
        2.0,
        "bowtie_length",
    );
}

#[test]
fn npy_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let set = generate(5, 1);
    host_trainer::smiley::write_set(dir.path(), "train", &set).unwrap();
    let images = host_trainer::matrix::read_matrix(&dir.path().join("train_images.npy")).unwrap();
    assert_eq!((images.rows, images.cols), (5, SMILEY_PIXELS));
    assert_eq!(images.data, set.images);
    let values = host_trainer::matrix::read_matrix(&dir.path().join("train_values.npy")).unwrap();
    assert_eq!((values.rows, values.cols), (5, N_SOURCES));
    assert_eq!(values.data, set.values);
}
