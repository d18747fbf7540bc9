//! Smiley generator against the authors' MATLAB definitions (`make_smile_dataset.m`,
//! `add_eyes.m`, `mouth.m`, `make_hat.m`, `add_bowtie.m`): the pixels of every part at the
//! base values worked out by hand from those definitions, how each source moves its part,
//! presence statistics, the ground truth and the pixel order.

use std::collections::BTreeSet;

use host_trainer::smiley::{
    FEATURES, N_GROUPS, N_SOURCES, SMILEY_PIXELS, SMILEY_SIDE_PX, SOURCE_SD, SmileyGroup,
    SmileyParams, generate, render, to_column_major, write_set_with,
};

/// A pixel in the MATLAB script's 1-based (x = column, y = row) coordinates.
type Px = (i64, i64);

fn at(img: &[f32], (x, y): Px) -> f32 {
    img[(y as usize - 1) * SMILEY_SIDE_PX + (x as usize - 1)]
}

fn ink(img: &[f32]) -> BTreeSet<Px> {
    (0..SMILEY_PIXELS)
        .filter(|&i| img[i] > 0.5)
        .map(|i| {
            (
                (i % SMILEY_SIDE_PX) as i64 + 1,
                (i / SMILEY_SIDE_PX) as i64 + 1,
            )
        })
        .collect()
}

/// Pixels that group `g` changes when drawn alone on the bare face.
fn part(p: &SmileyParams, g: SmileyGroup) -> BTreeSet<Px> {
    let mut only = *p;
    only.present = [false; N_GROUPS];
    let bare = render(&only);
    only.present[g as usize] = true;
    let with = render(&only);
    (0..SMILEY_PIXELS)
        .filter(|&i| bare[i] != with[i])
        .map(|i| {
            (
                (i % SMILEY_SIDE_PX) as i64 + 1,
                (i / SMILEY_SIDE_PX) as i64 + 1,
            )
        })
        .collect()
}

fn rect(xs: std::ops::RangeInclusive<i64>, ys: std::ops::RangeInclusive<i64>) -> BTreeSet<Px> {
    ys.flat_map(|y| xs.clone().map(move |x| (x, y))).collect()
}

fn shifted(px: &BTreeSet<Px>, dx: i64, dy: i64) -> BTreeSet<Px> {
    px.iter().map(|&(x, y)| (x + dx, y + dy)).collect()
}

fn with(source: usize, dv: f64) -> SmileyParams {
    let mut p = SmileyParams::mean_all_present();
    p.draws[source] += dv;
    p
}

fn rows_of(px: &BTreeSet<Px>) -> BTreeSet<i64> {
    px.iter().map(|p| p.1).collect()
}

fn cols_in_row(px: &BTreeSet<Px>, y: i64) -> BTreeSet<i64> {
    px.iter().filter(|p| p.1 == y).map(|p| p.0).collect()
}

#[test]
fn bare_face_is_the_radius_10_disc_about_16_5() {
    let p = SmileyParams {
        present: [false; N_GROUPS],
        ..SmileyParams::mean_all_present()
    };
    let face = ink(&render(&p));
    // R = sqrt((x − 16.5)² + (y − 16.5)²) ≤ 10 on the 1..32 grid: 316 pixels, rows 7..26;
    // its top row (y = 7) holds x = 14..19.
    assert_eq!(face.len(), 316);
    assert_eq!(rows_of(&face), (7..=26).collect());
    assert_eq!(cols_in_row(&face, 7), (14..=19).collect());
    // Symmetric under both flips (the centre lies between pixels 16 and 17).
    for &(x, y) in &face {
        assert!(face.contains(&(33 - x, y)) && face.contains(&(x, 33 - y)));
    }
}

#[test]
fn parts_at_their_base_values_are_the_scripts_pixels() {
    let p = SmileyParams::mean_all_present();
    // Eyes: discs of radius 2 about (12.5, 14) and (20.5, 14), cut out of the face.
    let eyes = rect(11..=14, 13..=15)
        .union(&rect(19..=22, 13..=15))
        .copied()
        .collect();
    assert_eq!(part(&p, SmileyGroup::Eyes), eyes);
    // Mouth: rows round(22 ∓ 1) = 21..23, columns round(16 ∓ 2) = 14..18, and the corner
    // pixels one and two columns beyond each end on the centre row 22.
    let mut mouth = rect(14..=18, 21..=23);
    mouth.extend([(12, 22), (13, 22), (19, 22), (20, 22)]);
    assert_eq!(part(&p, SmileyGroup::Mouth), mouth);
    // Hat: brim rows round(6 ∓ 1) = 5..7, columns round(16.5 ∓ 7.5) = 9..24; crown rows
    // round(5 − 2) = 3 down to the brim's top row 5, columns round(16.5 ∓ 5) = 12..22. Drawn
    // last, over the face's top row, whose 6 pixels (14..19, 7) were already ink.
    let hat: BTreeSet<Px> = rect(9..=24, 5..=7)
        .union(&rect(12..=22, 3..=5))
        .copied()
        .collect();
    let face_top: BTreeSet<Px> = rect(14..=19, 7..=7);
    assert_eq!(
        part(&p, SmileyGroup::Hat),
        hat.difference(&face_top).copied().collect()
    );
    let all = render(&p);
    assert!(hat.iter().all(|&px| at(&all, px) == 1.0));
    // Bow tie: a 5 × 12 box at rows round(29 − 2.5) = 27.., columns round(16.5 − 6) = 11..:
    // its ink spans exactly rows 27..31 and columns 11..22, pinched at the knot, mirror
    // symmetric about x = 16.5 and below the face (row 26 is the face's last).
    let tie = part(&p, SmileyGroup::BowTie);
    assert_eq!(rows_of(&tie), (27..=31).collect());
    assert_eq!(
        tie.iter().map(|p| p.0).collect::<BTreeSet<_>>(),
        (11..=22).collect()
    );
    for &(x, y) in &tie {
        assert!(
            tie.contains(&(33 - x, y)),
            "tie not symmetric at ({x}, {y})"
        );
    }
    let height = |x: i64| tie.iter().filter(|p| p.0 == x).count();
    assert_eq!(height(11), 5);
    assert!(height(16) < height(11), "no knot");
}

/// The hat at its base values (see `parts_at_their_base_values_are_the_scripts_pixels`).
fn base_hat() -> BTreeSet<Px> {
    rect(9..=24, 5..=7)
        .union(&rect(12..=22, 3..=5))
        .copied()
        .collect()
}

/// Ink above the face (rows 1..6), where only the hat draws.
fn above_face(p: &SmileyParams) -> BTreeSet<Px> {
    ink(&render(p)).into_iter().filter(|px| px.1 <= 6).collect()
}

#[test]
fn each_source_moves_its_part_as_the_script_scales_it() {
    let base = SmileyParams::mean_all_present();
    use SmileyGroup::*;
    // Positions: a draw of Δv moves the whole part by px_per_unit · Δv pixels.
    for (source, group, dv, dx, dy) in [
        (0, BowTie, 4.0, 2, 0), // bowtie_x: 0.5 px per unit
        (1, BowTie, -1.0, 0, -1),
        (11, Eyes, 2.0, 0, 2),
        (15, Mouth, 4.0, 2, 0),
        (16, Mouth, -4.0, 0, -2),
    ] {
        assert_eq!(FEATURES[source].group, group, "{}", FEATURES[source].name);
        assert_eq!(
            part(&with(source, dv), group),
            shifted(&part(&base, group), dx, dy),
            "{}",
            FEATURES[source].name
        );
    }
    let above = |px: BTreeSet<Px>| px.into_iter().filter(|p| p.1 <= 6).collect::<BTreeSet<_>>();
    assert_eq!(
        above_face(&with(4, 2.0)),
        above(shifted(&base_hat(), 2, 0)),
        "hat_x"
    );
    assert_eq!(
        above_face(&with(5, -2.0)),
        shifted(&base_hat(), 0, -2),
        "hat_y"
    );
    // Each eye moves away from the centre line by the offset's change.
    let want: BTreeSet<Px> = rect(10..=13, 13..=15)
        .union(&rect(20..=23, 13..=15))
        .copied()
        .collect();
    assert_eq!(part(&with(10, 1.0), Eyes), want, "eyes_offset");
    // A larger radius: every hole within the new radius of its centre, and more of them.
    let big = part(&with(12, 1.0), Eyes);
    assert!(big.len() > 24);
    for &(x, y) in &big {
        let d = (x as f64 - 12.5)
            .hypot(y as f64 - 14.0)
            .min((x as f64 - 20.5).hypot(y as f64 - 14.0));
        assert!(d <= 3.0, "({x}, {y}) is {d} px from both eye centres");
    }
}

#[test]
fn sizes_grow_by_the_scripts_scales() {
    assert_eq!(
        above_face(&SmileyParams::mean_all_present()),
        base_hat().into_iter().filter(|p| p.1 <= 6).collect()
    );
    // Brim width 15 + 3v: Δv = 0.6 → 16.8 px: columns round(16.5 ∓ 8.4) = 8..25.
    let wide = above_face(&with(6, 0.6));
    assert_eq!(cols_in_row(&wide, 6), (8..=25).collect());
    assert_eq!(cols_in_row(&wide, 4), (12..=22).collect(), "crown kept");
    // Brim height 2 + 2v: Δv = 1 → rows round(6 ∓ 2) = 4..8; the crown rises to row 2.
    let tall = with(7, 1.0);
    assert_eq!(rows_of(&above_face(&tall)), (2..=6).collect());
    let img = render(&tall);
    // Row 8 of the face spans columns 12..21; the brim adds 9..11 and 22..24.
    assert!((9..=24).all(|x| at(&img, (x, 8)) == 1.0));
    assert_eq!(at(&img, (8, 8)), 0.0);
    // Crown width 10 + 2v: Δv = 1 → round(10.5) = 11 .. round(22.5) = 23.
    assert_eq!(
        cols_in_row(&above_face(&with(8, 1.0)), 3),
        (11..=23).collect()
    );
    // Crown height 2 + v: Δv = 1 → rows round(5 − 3) = 2..5.
    assert_eq!(rows_of(&above_face(&with(9, 1.0))), (2..=6).collect());
    assert_eq!(
        rows_of(&above_face(&SmileyParams::mean_all_present())),
        (3..=6).collect()
    );

    // Mouth length 4 + v: Δv = 2 → columns round(16 ∓ 3) = 13..19, corners moved out.
    let long = part(&with(13, 2.0), SmileyGroup::Mouth);
    assert_eq!(cols_in_row(&long, 21), (13..=19).collect());
    assert_eq!(cols_in_row(&long, 22), (11..=21).collect());
    // Mouth height 2 + v: Δv = 2 → rows round(22 ∓ 2) = 20..24.
    let high = part(&with(14, 2.0), SmileyGroup::Mouth);
    assert_eq!(rows_of(&high), (20..=24).collect());
    // Corners: the inner pair moves by v rows, the outer by 1.4 v (v = −2: rows 20 and 19).
    let smile = part(&with(17, -2.0), SmileyGroup::Mouth);
    let corners: BTreeSet<Px> = smile
        .iter()
        .filter(|p| p.0 < 14 || p.0 > 18)
        .copied()
        .collect();
    assert_eq!(corners, [(12, 19), (13, 20), (19, 20), (20, 19)].into());

    // Bow tie length 12 + 3v: Δv = 0.6 → ceil(13.8) = 14 columns from round(16.5 − 6.9) = 10;
    // height 5 + 2v: Δv = 1 → 7 rows from round(29 − 3.5) = 26 to 32.
    let cols = |p: &BTreeSet<Px>| p.iter().map(|q| q.0).collect::<BTreeSet<_>>();
    assert_eq!(
        cols(&part(&with(2, 0.6), SmileyGroup::BowTie)),
        (10..=23).collect()
    );
    assert_eq!(
        rows_of(&part(&with(3, 1.0), SmileyGroup::BowTie)),
        (26..=32).collect()
    );
}

#[test]
fn only_a_drawn_groups_sources_change_the_image() {
    let set_seed = 3;
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(set_seed);
    for _ in 0..50 {
        let p = SmileyParams::sample(&mut rng, 0.5);
        let img = render(&p);
        for (s, f) in FEATURES.iter().enumerate() {
            let mut q = p;
            q.draws[s] += 3.0;
            let changed = render(&q) != img;
            if !p.present[f.group as usize] {
                assert!(!changed, "{} changed an image without its group", f.name);
            }
        }
        // The bow tie never reaches the upper face (rows 1..20).
        let mut no_tie = p;
        no_tie.present[SmileyGroup::BowTie as usize] = false;
        let a = render(&no_tie);
        for i in 0..20 * SMILEY_SIDE_PX {
            assert_eq!(a[i], img[i]);
        }
    }
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
fn ground_truth_is_the_scripts_s_and_v() {
    let n = 3000;
    let set = generate(n, 11);
    assert_eq!(set.images.len(), n * SMILEY_PIXELS);
    assert!(
        set.images.iter().all(|&v| v == 0.0 || v == 1.0),
        "images are not binary"
    );
    // Groups in the script's column order: bow tie 0–3, hat 4–9, eyes 10–12, mouth 13–17.
    let ranges: Vec<_> = SmileyGroup::ALL.iter().map(|g| g.sources()).collect();
    assert_eq!(ranges, vec![0..4, 4..10, 10..13, 13..18]);
    let sources = set.sources();
    let mut absent_nonzero = 0;
    for i in 0..n {
        for g in SmileyGroup::ALL {
            let s0 = set.presence[i * N_SOURCES + g.sources().start];
            for s in g.sources() {
                let k = i * N_SOURCES + s;
                assert_eq!(set.presence[k], s0, "presence differs inside {}", g.name());
                assert_eq!(sources[k], s0 * set.values[k]);
                if s0 == 0.0 && set.values[k] != 0.0 {
                    absent_nonzero += 1;
                }
            }
        }
    }
    assert!(absent_nonzero > 0, "V must keep the draws of absent groups");
    // Every V column is N(0, 0.5²) (sample of 3000: sd within ±8 %).
    for (s, f) in FEATURES.iter().enumerate() {
        let vals: Vec<f64> = (0..n)
            .map(|i| f64::from(set.values[i * N_SOURCES + s]))
            .collect();
        let mean = vals.iter().sum::<f64>() / n as f64;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        assert!(mean.abs() < 0.05, "{}: mean {mean}", f.name);
        assert!((sd / SOURCE_SD - 1.0).abs() < 0.08, "{}: sd {sd}", f.name);
    }
    // The supplement's bow-tie spreads: 0.25 px horizontal, 0.5 vertical, 1.5 length, 1 height.
    let sds: Vec<f64> = FEATURES[0..4].iter().map(|f| f.sd_px()).collect();
    assert_eq!(sds, vec![0.25, 0.5, 1.5, 1.0]);
}

#[test]
fn absent_hat_and_bow_tie_leave_the_margins_empty() {
    let n = 1000;
    let set = generate(n, 5);
    let (mut hats, mut ties) = (0, 0);
    for i in 0..n {
        let img = set.image(i);
        let any_ink = |rows: std::ops::RangeInclusive<i64>| {
            rows.flat_map(|y| (1..=32).map(move |x| (x, y)))
                .any(|px| at(img, px) > 0.0)
        };
        let hat = set.presence[i * N_SOURCES + SmileyGroup::Hat.sources().start] == 1.0;
        let tie = set.presence[i * N_SOURCES + SmileyGroup::BowTie.sources().start] == 1.0;
        // The face covers rows 7..26 only.
        assert_eq!(any_ink(1..=6), hat, "image {i}: hat {hat}");
        assert_eq!(any_ink(27..=32), tie, "image {i}: bow tie {tie}");
        hats += usize::from(hat);
        ties += usize::from(tie);
    }
    assert!(hats > 0 && ties > 0);
}

#[test]
fn same_seed_same_set_other_seed_other_set() {
    assert_eq!(generate(50, 3), generate(50, 3));
    assert_ne!(generate(50, 3).images, generate(50, 4).images);
}

#[test]
fn column_major_is_matlabs_reshape_order() {
    let img = render(&SmileyParams::mean_all_present());
    let t = to_column_major(&img);
    for y in 1..=32usize {
        for x in 1..=32usize {
            // MATLAB: X(k) with k = y + 32 (x − 1), 1-based.
            assert_eq!(t[(y - 1) + 32 * (x - 1)], img[(y - 1) * 32 + (x - 1)]);
        }
    }
    // The hat's crown (rows 3..5) is in the first rows of the image, so in column-major
    // order it appears near the start of every column it covers.
    assert_eq!(t[32 * 11 + 2], 1.0);
    assert_ne!(t, img);

    let dir = tempfile::tempdir().unwrap();
    let set = generate(3, 1);
    write_set_with(dir.path(), "train", &set, true).unwrap();
    let images = host_trainer::matrix::read_matrix(&dir.path().join("train_images.npy")).unwrap();
    assert_eq!(
        &images.data[..SMILEY_PIXELS],
        &to_column_major(set.image(0))[..]
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
