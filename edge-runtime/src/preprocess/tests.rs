extern crate std;

use super::*;
use std::vec::Vec;

/// Deterministic pseudo-random walk-ish IMU signal (no rand dependency in this crate).
fn synthetic_recording(n: usize, seed: u64) -> Vec<ImuSample> {
    let mut state = seed;
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    (0..n)
        .map(|i| {
            let t = i as f32 / SAMPLE_RATE_HZ;
            let walk = (2.0 * core::f32::consts::PI * 1.8 * t).sin();
            ImuSample {
                acc_g: [
                    0.1 + 0.3 * walk + 0.05 * noise(),
                    -0.2 + 0.1 * walk + 0.05 * noise(),
                    0.97 + 0.2 * walk + 0.05 * noise(),
                ],
                gyro_rad_s: [0.5 * walk + 0.1 * noise(), 0.1 * noise(), -0.3 * walk],
            }
        })
        .collect()
}

fn collect_windows(samples: &[ImuSample], channels: ChannelSet) -> Vec<Window> {
    let mut windows = Vec::new();
    windows_of_recording(samples, channels, |w| windows.push(w.clone())).unwrap();
    windows
}

#[test]
fn window_count_and_start_indices() {
    let samples = synthetic_recording(1000, 1);
    for n in [0, 1, 127, 128, 129, 191, 192, 193, 255, 256, 1000] {
        let windows = collect_windows(&samples[..n], ChannelSet::ALL);
        let expected = if n < 128 { 0 } else { (n - 128) / 64 + 1 };
        assert_eq!(windows.len(), expected, "n = {n}");
        assert_eq!(window_count(n), expected, "n = {n}");
        for (i, w) in windows.iter().enumerate() {
            assert_eq!(w.start_sample, (i * HOP_LEN) as u64);
            assert_eq!(w.as_slice().len(), 9 * WINDOW_LEN);
        }
    }
}

#[test]
fn overlapping_windows_share_their_halves_and_follow_the_samples() {
    let samples = synthetic_recording(600, 2);
    let windows = collect_windows(&samples, ChannelSet::ALL);
    for pair in windows.windows(2) {
        for channel in Channel::ALL {
            let (a, b) = (
                pair[0].channel(channel).unwrap(),
                pair[1].channel(channel).unwrap(),
            );
            assert_eq!(a[HOP_LEN..], b[..HOP_LEN], "{channel}");
        }
    }
    // Column j of window w is the output for input sample w.start + j: a streaming run
    // that records every output must agree column by column.
    let mut p = Preprocessor::new(ChannelSet::ALL);
    let mut per_sample: Vec<[f32; 9]> = Vec::new();
    for s in &samples {
        let raw = [
            s.acc_g[0],
            s.acc_g[1],
            s.acc_g[2],
            s.gyro_rad_s[0],
            s.gyro_rad_s[1],
            s.gyro_rad_s[2],
        ];
        per_sample.push(p.filter(&raw, true, true));
    }
    for w in &windows {
        for channel in Channel::ALL {
            let row = w.channel(channel).unwrap();
            for (j, &v) in row.iter().enumerate() {
                let expected = per_sample[w.start_sample as usize + j][channel.index()];
                assert_eq!(v.to_bits(), expected.to_bits());
            }
        }
    }
}

#[test]
fn streaming_equals_batch_and_reset_restarts() {
    let samples = synthetic_recording(2000, 3);
    let batch = collect_windows(&samples, ChannelSet::ALL);
    let mut p = Preprocessor::new(ChannelSet::ALL);
    for _round in 0..2 {
        let mut streamed = Vec::new();
        for &s in &samples {
            if let Some(w) = p.push(s).unwrap() {
                streamed.push(w.clone());
            }
        }
        assert_eq!(streamed, batch);
        assert_eq!(p.samples_seen(), 2000);
        p.reset();
        assert_eq!(p.samples_seen(), 0);
    }
}

#[test]
fn channel_selection_picks_the_right_rows() {
    let samples = synthetic_recording(700, 4);
    let all = collect_windows(&samples, ChannelSet::ALL);
    for set in [
        ChannelSet::ACC_ONLY,
        ChannelSet::TOTAL_ACC,
        ChannelSet::BODY_GYRO,
        ChannelSet::from_names("body_acc_z,total_acc_y,body_gyro_x").unwrap(),
    ] {
        let subset = collect_windows(&samples, set);
        assert_eq!(subset.len(), all.len());
        for (sub, full) in subset.iter().zip(&all) {
            assert_eq!(sub.as_slice().len(), set.len() * WINDOW_LEN);
            assert_eq!(sub.start_sample, full.start_sample);
            for (row, channel) in set.iter().enumerate() {
                assert_eq!(
                    &sub.as_slice()[row * WINDOW_LEN..(row + 1) * WINDOW_LEN],
                    full.channel(channel).unwrap(),
                    "{set} row {row}"
                );
            }
        }
    }
}

fn mean(x: &[f32]) -> f32 {
    x.iter().sum::<f32>() / x.len() as f32
}

fn rms_about_mean(x: &[f32]) -> f32 {
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / x.len() as f32).sqrt()
}

/// Rows are in UCI order and hold what their names say: gravity ends up in total_acc,
/// motion in body_acc, angular velocity in body_gyro.
#[test]
fn channels_carry_gravity_motion_and_rotation() {
    let gravity = [0.2f32, -0.3, 0.93];
    let motion_amp = [0.1f32, 0.2, 0.3];
    let gyro = [0.4f32, -0.5, 0.6];
    let samples: Vec<ImuSample> = (0..3000)
        .map(|i| {
            let s = (2.0 * core::f32::consts::PI * 2.0 * i as f32 / SAMPLE_RATE_HZ).sin();
            ImuSample {
                acc_g: core::array::from_fn(|a| gravity[a] + motion_amp[a] * s),
                gyro_rad_s: gyro,
            }
        })
        .collect();
    let windows = collect_windows(&samples, ChannelSet::ALL);
    let w = windows.last().unwrap();
    for axis in 0..3 {
        let total = w.channel(Channel::ALL[axis]).unwrap();
        let body = w.channel(Channel::ALL[3 + axis]).unwrap();
        let body_gyro = w.channel(Channel::ALL[6 + axis]).unwrap();
        // A 2.56 s window holds 5.12 periods of 2 Hz, so the mean carries a little motion.
        assert!((mean(total) - gravity[axis]).abs() < 0.02, "total {axis}");
        assert!(mean(body).abs() < 0.02, "body mean {axis}");
        let expected_rms = motion_amp[axis] / core::f32::consts::SQRT_2;
        assert!(
            (rms_about_mean(body) - expected_rms).abs() < 0.03 * expected_rms,
            "body rms {axis}: {} vs {expected_rms}",
            rms_about_mean(body)
        );
        assert!(body_gyro.iter().all(|&v| (v - gyro[axis]).abs() < 1e-6));
    }
}

/// The gravity path really is the 0.3 Hz low-pass: a 0.3 Hz acceleration shows up in
/// gravity (= total − body) at −3 dB and a 0.6 Hz one at about −18 dB.
#[test]
fn gravity_is_the_0_3_hz_lowpass_of_total_acc() {
    for (freq_hz, lo_db, hi_db) in [(0.3f64, -3.5, -2.5), (0.6, -18.6, -17.6)] {
        let samples: Vec<ImuSample> = (0..20_000)
            .map(|i| {
                let phase = 2.0 * core::f64::consts::PI * freq_hz * i as f64 / 50.0;
                ImuSample {
                    acc_g: [0.5 * phase.sin() as f32, 0.0, 1.0],
                    gyro_rad_s: [0.0; 3],
                }
            })
            .collect();
        let mut gravity_x = Vec::new();
        let mut total_x = Vec::new();
        windows_of_recording(&samples, ChannelSet::ACC_ONLY, |w| {
            // Non-overlapping halves, after the transient of the first 100 s.
            if w.start_sample >= 5000 && (w.start_sample / HOP_LEN as u64).is_multiple_of(2) {
                let total = w.channel(Channel::TotalAccX).unwrap();
                let body = w.channel(Channel::BodyAccX).unwrap();
                total_x.extend_from_slice(total);
                gravity_x.extend(total.iter().zip(body).map(|(t, b)| t - b));
            }
        })
        .unwrap();
        let gain_db = 20.0 * (rms_about_mean(&gravity_x) / rms_about_mean(&total_x)).log10();
        assert!(
            (lo_db..=hi_db).contains(&gain_db),
            "{freq_hz} Hz: gravity gain {gain_db} dB"
        );
    }
}

#[test]
fn single_sample_spike_is_removed_exactly() {
    let still = ImuSample {
        acc_g: [0.01, -0.02, 0.99],
        gyro_rad_s: [0.001, 0.0, -0.002],
    };
    let clean = std::vec![still; 400];
    let mut spiky = clean.clone();
    spiky[150].acc_g[1] = 2.0;
    spiky[300].gyro_rad_s[2] = -8.0;
    assert_eq!(
        collect_windows(&spiky, ChannelSet::ALL),
        collect_windows(&clean, ChannelSet::ALL)
    );
    // Without the median filter the spike would reach the output: check a two-sample
    // burst (which a 3-point median keeps) does change the windows.
    spiky[151].acc_g[1] = 2.0;
    assert_ne!(
        collect_windows(&spiky, ChannelSet::ALL),
        collect_windows(&clean, ChannelSet::ALL)
    );
}

#[test]
fn non_finite_input_is_reported_and_does_not_poison_the_state() {
    let samples = synthetic_recording(800, 5);
    let reference = collect_windows(&samples, ChannelSet::ALL);

    for (bad_index, field, value) in [
        (100usize, 0usize, f32::NAN),
        (200, 2, f32::INFINITY),
        (300, 4, f32::NEG_INFINITY),
        (0, 5, f32::NAN),
    ] {
        let mut p = Preprocessor::new(ChannelSet::ALL);
        let mut windows = Vec::new();
        let mut input_index = 0u64;
        for (i, &s) in samples.iter().enumerate() {
            if i == bad_index {
                let mut bad = s;
                if field < 3 {
                    bad.acc_g[field] = value;
                } else {
                    bad.gyro_rad_s[field - 3] = value;
                }
                let err = p.push(bad).unwrap_err();
                assert_eq!(
                    err,
                    PreprocessError::NonFinite {
                        sample_index: input_index,
                        field: FIELD_NAMES[field]
                    }
                );
                input_index += 1;
            }
            if let Some(w) = p.push(s).unwrap() {
                windows.push(w.clone());
            }
            input_index += 1;
        }
        assert_eq!(p.rejected_samples(), 1);
        assert_eq!(p.samples_seen(), 801);
        // Same values as if the bad sample never came; indices after it move by one.
        assert_eq!(windows.len(), reference.len());
        for (got, want) in windows.iter().zip(&reference) {
            assert_eq!(got.as_slice(), want.as_slice());
            let shift = u64::from(want.start_sample >= bad_index as u64);
            assert_eq!(got.start_sample, want.start_sample + shift);
        }
    }

    let mut bad = samples.clone();
    bad[321].gyro_rad_s[1] = f32::NAN;
    let mut seen = 0;
    let err = windows_of_recording(&bad, ChannelSet::ALL, |_| seen += 1).unwrap_err();
    assert_eq!(
        err,
        PreprocessError::NonFinite {
            sample_index: 321,
            field: "gyro_rad_s.y"
        }
    );
    assert_eq!(seen, window_count(321));
    let message = std::format!("{err}");
    assert!(
        message.contains("321") && message.contains("gyro_rad_s.y"),
        "{message}"
    );

    // An accelerometer-only pipeline never looks at the gyroscope.
    let acc_only = collect_windows(&bad, ChannelSet::ACC_ONLY);
    assert_eq!(acc_only.len(), window_count(bad.len()));
}

#[test]
fn extreme_finite_input_gives_finite_windows() {
    let mut samples = synthetic_recording(300, 6);
    for (i, s) in samples.iter_mut().enumerate() {
        let big = if i % 2 == 0 { f32::MAX } else { -f32::MAX };
        s.acc_g = [big, f32::MAX, -big];
    }
    for w in collect_windows(&samples, ChannelSet::ALL) {
        assert!(w.as_slice().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn window_from_slice_checks_length() {
    let values: Vec<f32> = (0..6 * WINDOW_LEN).map(|i| i as f32).collect();
    let w = Window::from_slice(ChannelSet::ACC_ONLY, 7, &values).unwrap();
    assert_eq!(w.as_slice(), &values[..]);
    assert_eq!(w.start_sample, 7);
    assert_eq!(
        w.channel(Channel::BodyAccX).unwrap()[0],
        (3 * WINDOW_LEN) as f32
    );
    assert_eq!(w.channel(Channel::BodyGyroX), None);
    assert_eq!(
        Window::from_slice(ChannelSet::ALL, 0, &values),
        Err(PreprocessError::Length {
            expected: 9 * WINDOW_LEN,
            got: 6 * WINDOW_LEN
        })
    );
}

#[test]
fn channel_scaling_maps_range_to_unit_interval() {
    let s = ChannelScaling::from_min_max(-2.0, 2.0);
    assert_eq!(s.apply(-2.0), 0.0);
    assert_eq!(s.apply(0.0), 0.5);
    assert_eq!(s.apply(2.0), 1.0);
    assert_eq!(s.apply(5.0), 1.0);
    assert_eq!(s.apply(-5.0), 0.0);
    let flat = ChannelScaling::from_min_max(1.0, 1.0);
    assert_eq!(flat.scale, 0.0);
    assert_eq!(flat.apply(123.0), 0.0);

    let mut values: Vec<f32> = std::vec![1.0; WINDOW_LEN];
    values.extend(std::vec![3.0; WINDOW_LEN]);
    let scaling = [
        ChannelScaling::from_min_max(0.0, 2.0),
        ChannelScaling::from_min_max(2.0, 6.0),
    ];
    scale_window(&mut values, &scaling).unwrap();
    assert!(values[..WINDOW_LEN].iter().all(|&v| v == 0.5));
    assert!(values[WINDOW_LEN..].iter().all(|&v| v == 0.25));
    assert!(scale_window(&mut values[1..], &scaling).is_err());

    let back = postcard_round_trip(&scaling[1]);
    assert_eq!(back, scaling[1]);
}

/// Serde round trip through postcard (serde_json is not a dependency of this crate).
fn postcard_round_trip(s: &ChannelScaling) -> ChannelScaling {
    let mut buf = [0u8; 16];
    let bytes = postcard::to_slice(s, &mut buf).unwrap();
    postcard::from_bytes(bytes).unwrap()
}
