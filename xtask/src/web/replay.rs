//! A HAPT recording as a phone would report it: `devicemotion` events at about 60 Hz
//! with timestamp jitter, in DeviceMotion units and axes, with a few bad events; the
//! frames the host computes from them; and the frame-by-frame comparison with the page.

use edge_runtime::frame::Frame;
use edge_runtime::preprocess::ImuSample;
use edge_runtime_wasm::phone::{MotionEvent, Mount, from_training};
use edge_runtime_wasm::session::PhoneSession;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Value, json};

/// How the recording becomes events.
#[derive(Clone, Copy, Debug)]
pub struct ReplayConfig {
    pub mount: Mount,
    /// Mean event rate (iOS delivers 60 Hz).
    pub rate_hz: f64,
    /// Each event's time is off its nominal slot by a uniform draw in ±this.
    pub jitter_ms: f64,
    /// `event.timeStamp` of the first event.
    pub start_ms: f64,
    pub seed: u64,
}

/// Sample period of the HAPT recordings.
const HAPT_PERIOD_MS: f64 = 20.0;
/// Chrome rounds `event.timeStamp` to 0.1 ms; the W3C spec limits acceleration to
/// 0.1 m/s² and rotation rate to 0.1 deg/s.
const TIME_STEP_MS: f64 = 0.1;
const ACC_STEP_M_S2: f64 = 0.1;
const RATE_STEP_DEG_S: f64 = 0.1;

fn quantise(v: f64, step: f64) -> f64 {
    (v / step).round() * step
}

fn lerp(a: f32, b: f32, frac: f64) -> f64 {
    f64::from(a) + (f64::from(b) - f64::from(a)) * frac
}

/// Events for `samples` (50 Hz, g and rad/s): each event reads the recording, linearly
/// interpolated, at its own jittered instant. Two events are spoiled on purpose: one a
/// third of the way in has a null (NaN) acceleration y, one halfway has a timestamp
/// 5 ms before its predecessor's. The page and the host must flag both alike.
pub fn phone_events(samples: &[ImuSample], config: &ReplayConfig) -> Vec<MotionEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let period_ms = 1000.0 / config.rate_hz;
    let span_ms = samples.len().saturating_sub(1) as f64 * HAPT_PERIOD_MS;
    let mut events = Vec::new();
    for k in 0.. {
        let jitter = rng.random_range(-config.jitter_ms..=config.jitter_ms);
        let at_ms = (k as f64 * period_ms + jitter).max(0.0);
        if at_ms >= span_ms {
            break;
        }
        let position = at_ms / HAPT_PERIOD_MS;
        let i = position.floor() as usize;
        let frac = position - i as f64;
        let (a, b) = (samples[i], samples[i + 1]);
        let acc_g = [0, 1, 2].map(|c| lerp(a.acc_g[c], b.acc_g[c], frac));
        let gyro = [0, 1, 2].map(|c| lerp(a.gyro_rad_s[c], b.gyro_rad_s[c], frac));
        let (acc_m_s2, rotation_deg_s) = from_training(config.mount, acc_g, gyro);
        events.push(MotionEvent {
            t_ms: quantise(config.start_ms + at_ms, TIME_STEP_MS),
            acc_m_s2: acc_m_s2.map(|v| quantise(v, ACC_STEP_M_S2)),
            rotation_deg_s: rotation_deg_s.map(|v| quantise(v, RATE_STEP_DEG_S)),
        });
    }
    let n = events.len();
    if n > 4 {
        events[n / 3].acc_m_s2[1] = f64::NAN;
        events[n / 2].t_ms = events[n / 2 - 1].t_ms - 5.0;
    }
    events
}

/// The events as the page's replay script takes them: `[t, ax, ay, az, alpha, beta,
/// gamma]`, NaN as `null` (what DeviceMotion reports for a missing value).
pub fn events_json(events: &[MotionEvent]) -> Value {
    let num = |v: f64| if v.is_nan() { Value::Null } else { json!(v) };
    Value::Array(
        events
            .iter()
            .map(|e| {
                let mut row = vec![num(e.t_ms)];
                row.extend(e.acc_m_s2.iter().chain(&e.rotation_deg_s).map(|&v| num(v)));
                Value::Array(row)
            })
            .collect(),
    )
}

/// What edge-runtime computes on the host for the same events.
pub fn host_frames(
    blob: &[u8],
    mount: Mount,
    events: &[MotionEvent],
) -> anyhow::Result<Vec<Frame>> {
    let mut session = PhoneSession::open(blob, mount)?;
    let mut frames = Vec::new();
    for e in events {
        session.push(e, |f| frames.push(f));
    }
    Ok(frames)
}

/// One frame as the page recorded it (`window.vscApp.frames`).
#[derive(Debug, Clone, Deserialize)]
pub struct PageFrame {
    pub sequence: u32,
    pub timestamp_ms: u32,
    pub flags: u8,
    pub latent_dim: u8,
    /// Decimal, from a JavaScript BigInt.
    pub spike_bits: String,
    pub active_dims: Vec<u8>,
    pub gamma_q15: Vec<i16>,
    pub mu_q: Vec<i16>,
    pub mu_scale: f32,
    pub activity: u8,
    pub activity_score: i8,
    /// The wire encoding, hex.
    pub wire: String,
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks every field of every page frame against the host's: the wire bytes decode to
/// a frame equal to the host frame, and each field the page displays agrees with it.
/// Returns the number of frames compared, or the first difference.
pub fn compare(page: &[PageFrame], host: &[Frame]) -> Result<usize, String> {
    if page.len() != host.len() {
        return Err(format!(
            "the page made {} frames, the host {}",
            page.len(),
            host.len()
        ));
    }
    for (k, (p, h)) in page.iter().zip(host).enumerate() {
        let wire = unhex(&p.wire).ok_or_else(|| format!("frame {k}: wire is not hex"))?;
        let decoded = wire
            .get(1..wire.len().saturating_sub(1))
            .ok_or_else(|| format!("frame {k}: wire too short"))
            .and_then(|chunk| {
                Frame::decode_chunk(chunk).map_err(|e| format!("frame {k}: wire: {e}"))
            })?;
        if decoded != *h {
            return Err(format!("frame {k}: page {decoded:?}\n          host {h:?}"));
        }
        let active: Vec<u8> = h.active().map(|(j, _, _)| j as u8).collect();
        let fields = [
            ("sequence", p.sequence == h.sequence),
            ("timestamp_ms", p.timestamp_ms == h.timestamp_ms),
            ("flags", p.flags == h.flags),
            ("latent_dim", p.latent_dim == h.latent_dim),
            ("spike_bits", p.spike_bits == h.spike_bits.to_string()),
            ("active_dims", p.active_dims == active),
            ("gamma_q15", p.gamma_q15[..] == h.gamma_q15[..]),
            ("mu_q", p.mu_q[..] == h.mu_q[..]),
            ("mu_scale", p.mu_scale.to_bits() == h.mu_scale.to_bits()),
            ("activity", p.activity == h.activity),
            ("activity_score", p.activity_score == h.activity_score),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, same)| !same) {
            return Err(format!("frame {k}: field {name}: page {p:?}\n host {h:?}"));
        }
    }
    Ok(host.len())
}

#[cfg(test)]
mod tests {
    use edge_runtime::frame::MAX_WIRE_LEN;
    use edge_runtime_wasm::phone::to_training;

    use super::*;

    const MODEL: &[u8] = include_bytes!("../../../models/edge.vscq");

    fn recording(n: usize) -> Vec<ImuSample> {
        (0..n)
            .map(|k| {
                let t = k as f32 / 50.0;
                ImuSample {
                    acc_g: [
                        1.0 + 0.3 * (9.0 * t).sin(),
                        -0.2 + 0.1 * (4.5 * t).cos(),
                        0.05,
                    ],
                    gyro_rad_s: [0.8 * (9.0 * t).cos(), 0.1, -0.3 * (4.5 * t).sin()],
                }
            })
            .collect()
    }

    fn config() -> ReplayConfig {
        ReplayConfig {
            mount: Mount::PortraitHip,
            rate_hz: 60.0,
            jitter_ms: 3.0,
            start_ms: 1000.0,
            seed: 7,
        }
    }

    #[test]
    fn events_are_the_recording_in_phone_units_at_jittered_60_hz() {
        let samples = recording(500);
        let events = phone_events(&samples, &config());
        // 10 s at 60 Hz.
        assert!((595..=600).contains(&events.len()), "{}", events.len());
        let n = events.len();
        let backwards: Vec<usize> = (1..n)
            .filter(|&k| events[k].t_ms <= events[k - 1].t_ms)
            .collect();
        assert_eq!(backwards, [n / 2]);
        let gaps: Vec<f64> = (1..n)
            .filter(|&k| k != n / 2 && k != n / 2 + 1)
            .map(|k| events[k].t_ms - events[k - 1].t_ms)
            .collect();
        assert!(gaps.iter().all(|g| (10.5..=22.8).contains(g)), "{gaps:?}");
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 1000.0 / 60.0).abs() < 0.1, "{mean}");
        // Back through the page's conversion, each event is near the recording at its
        // instant (within the 0.1 m/s² and 0.1 deg/s rounding and the interpolation).
        let first = to_training(Mount::PortraitHip, &events[0]);
        assert!((first.sample.acc_g[0] - samples[0].acc_g[0]).abs() < 0.02);
        assert!((first.sample.gyro_rad_s[0] - samples[0].gyro_rad_s[0]).abs() < 0.1);
        assert!(events[n / 3].acc_m_s2[1].is_nan());
        let json = events_json(&events);
        assert!(json[n / 3][2].is_null());
        assert_eq!(json[0][0].as_f64(), Some(events[0].t_ms));
    }

    fn page_frame(f: &Frame) -> PageFrame {
        let mut wire = [0u8; MAX_WIRE_LEN];
        let len = f.encode(&mut wire).unwrap();
        PageFrame {
            sequence: f.sequence,
            timestamp_ms: f.timestamp_ms,
            flags: f.flags,
            latent_dim: f.latent_dim,
            spike_bits: f.spike_bits.to_string(),
            active_dims: f.active().map(|(j, _, _)| j as u8).collect(),
            gamma_q15: f.gamma_q15.to_vec(),
            mu_q: f.mu_q.to_vec(),
            mu_scale: f.mu_scale,
            activity: f.activity,
            activity_score: f.activity_score,
            wire: wire[..len].iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    #[test]
    fn host_frames_flag_the_spoiled_events_and_compare_finds_any_difference() {
        let events = phone_events(&recording(1000), &config());
        let host = host_frames(MODEL, Mount::PortraitHip, &events).unwrap();
        assert_eq!(host.len(), (1000 - 128) / 64 + 1);
        let flagged = host.iter().filter(|f| f.flags != 0).count();
        assert_eq!(flagged, 2, "one frame per spoiled event: {host:?}");

        let page: Vec<PageFrame> = host.iter().map(page_frame).collect();
        assert_eq!(compare(&page, &host), Ok(host.len()));

        let mut other = page.clone();
        other[3].mu_q[0] += 1;
        let err = compare(&other, &host).unwrap_err();
        assert!(err.starts_with("frame 3: field mu_q"), "{err}");
        let mut other = page.clone();
        other[2].wire = page[1].wire.clone();
        assert!(
            compare(&other, &host)
                .unwrap_err()
                .starts_with("frame 2: page")
        );
        assert!(
            compare(&page[1..], &host)
                .unwrap_err()
                .contains("page made")
        );
    }
}
