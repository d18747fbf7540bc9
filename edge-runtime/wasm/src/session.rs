//! One phone session: DeviceMotion events in, frames out. Plain Rust, so the host runs
//! exactly what the page runs (the browser test compares the two frame by frame).

use std::sync::Mutex;

use edge_runtime::blob::{BlobError, ModelBlob};
use edge_runtime::encoder::Encoder;
use edge_runtime::frame::Frame;
use edge_runtime::stream::TimedPipeline;

use crate::phone::{MotionEvent, Mount, to_training};

/// Blobs the page has opened, kept for the life of the page: the encoder borrows its
/// blob, and a session must own it. The same bytes opened twice are stored once, so
/// switching back and forth between models does not grow memory.
static OPENED_BLOBS: Mutex<Vec<&'static [u8]>> = Mutex::new(Vec::new());

fn keep(bytes: &[u8]) -> &'static [u8] {
    let mut opened = OPENED_BLOBS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&same) = opened.iter().find(|b| **b == bytes) {
        return same;
    }
    let kept: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
    opened.push(kept);
    kept
}

/// `event.timeStamp` (ms, f64) → µs. `None` for a time no clock gives (NaN, ±∞,
/// negative, or past 2⁵³ µs where f64 stops counting single microseconds).
fn timestamp_us(t_ms: f64) -> Option<u64> {
    let t_us = (t_ms * 1000.0).round();
    (t_us.is_finite() && (0.0..=9_007_199_254_740_992.0).contains(&t_us)).then_some(t_us as u64)
}

/// The model, the mount and the stream state of one recording.
pub struct PhoneSession {
    pipeline: TimedPipeline<Encoder<'static>>,
    mount: Mount,
    latent_dim: u8,
    blob_crc: u32,
    /// Time of the last sample the resampler accepted (mirrors its rule: all values
    /// finite and time after the previous accepted one).
    last_accepted_us: Option<u64>,
    events: u64,
    /// Events with an unusable timestamp before any sample was accepted: there is no
    /// frame yet to flag, so they are only counted.
    dropped_before_start: u64,
    /// Running mean of the acceleration in training axes (g), for the page's wearing hint.
    gravity_g: Option<[f32; 3]>,
}

/// Weight of each new event in [`PhoneSession::gravity_g`]: about a second's memory at
/// 50–100 Hz.
const GRAVITY_SMOOTHING: f32 = 0.02;

impl PhoneSession {
    /// Validates `blob` (the error says what is wrong with it) and starts a stream.
    pub fn open(blob: &[u8], mount: Mount) -> Result<PhoneSession, BlobError> {
        // Parse the caller's bytes first: a bad blob is never kept.
        ModelBlob::parse(blob)?;
        let model = ModelBlob::parse(keep(blob))?;
        let encoder = Encoder::new(model);
        let pipeline = TimedPipeline::new(model.channels(), encoder);
        let latent_dim = edge_runtime::stream::WindowEncoder::latent_dim(pipeline.encoder());
        Ok(PhoneSession {
            pipeline,
            mount,
            latent_dim,
            blob_crc: model.crc(),
            last_accepted_us: None,
            events: 0,
            dropped_before_start: 0,
            gravity_g: None,
        })
    }

    pub fn mount(&self) -> Mount {
        self.mount
    }

    /// J of the model.
    pub fn latent_dim(&self) -> u8 {
        self.latent_dim
    }

    /// CRC-32 of the blob (its trailer), to tell models apart.
    pub fn blob_crc(&self) -> u32 {
        self.blob_crc
    }

    /// The acceleration in training axes averaged over about the last second (g): worn
    /// as chosen and upright, x ≈ +1. `None` before the first finite event.
    pub fn gravity_g(&self) -> Option<[f32; 3]> {
        self.gravity_g
    }

    /// Events pushed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Events dropped unflagged: bad timestamps before the first good sample.
    pub fn dropped_before_start(&self) -> u64 {
        self.dropped_before_start
    }

    /// One `devicemotion` event; `on_frame` gets every frame it completes. NaN values and
    /// timestamps that do not advance are dropped and flag the next frame; nothing here
    /// can panic on input.
    pub fn push(&mut self, event: &MotionEvent, on_frame: impl FnMut(Frame)) {
        self.events += 1;
        let converted = to_training(self.mount, event);
        let finite = converted
            .sample
            .acc_g
            .iter()
            .chain(&converted.sample.gyro_rad_s)
            .all(|v| v.is_finite());
        let t_us = match (timestamp_us(event.t_ms), self.last_accepted_us) {
            (Some(t), _) => t,
            // Replaying the last accepted time makes the resampler reject the event as
            // not advancing, which flags the next frame TIMESTAMP.
            (None, Some(previous)) => previous,
            (None, None) => {
                self.dropped_before_start += 1;
                return;
            }
        };
        if finite {
            let acc = converted.sample.acc_g;
            let mean = self.gravity_g.get_or_insert(acc);
            for (m, a) in mean.iter_mut().zip(acc) {
                *m += (a - *m) * GRAVITY_SMOOTHING;
            }
        }
        if finite && self.last_accepted_us.is_none_or(|previous| t_us > previous) {
            self.last_accepted_us = Some(t_us);
        }
        self.pipeline
            .push(t_us, converted.sample, converted.saturated, on_frame);
    }
}

#[cfg(test)]
mod tests {
    use edge_runtime::frame::flags;

    use super::*;
    use crate::phone::{STANDARD_GRAVITY_M_S2, from_training};

    const MODEL: &[u8] = include_bytes!("../../../models/edge.vscq");

    /// Standing still, gently swaying: `n` events at `period_ms` from `t0_ms`.
    fn standing(n: usize, t0_ms: f64, period_ms: f64) -> Vec<MotionEvent> {
        (0..n)
            .map(|k| {
                let t_s = k as f64 * period_ms / 1000.0;
                let (acc, rate) = from_training(
                    Mount::HarWaist,
                    [1.0, -0.2 + 0.02 * (3.0 * t_s).sin(), 0.05],
                    [0.05 * (2.0 * t_s).cos(), 0.0, 0.01],
                );
                MotionEvent {
                    t_ms: t0_ms + k as f64 * period_ms,
                    acc_m_s2: acc,
                    rotation_deg_s: rate,
                }
            })
            .collect()
    }

    fn run(session: &mut PhoneSession, events: &[MotionEvent]) -> Vec<Frame> {
        let mut frames = Vec::new();
        for e in events {
            session.push(e, |f| frames.push(f));
        }
        frames
    }

    #[test]
    fn sixty_hz_events_give_a_frame_per_hop_of_stream_time() {
        let mut session = PhoneSession::open(MODEL, Mount::HarWaist).unwrap();
        // 10 s at 60 Hz: 500 grid samples → windows at 128, 192, …, 448: 6 frames.
        let frames = run(&mut session, &standing(600, 1234.5, 1000.0 / 60.0));
        assert_eq!(frames.len(), 6);
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(f.sequence, k as u32);
            assert_eq!(f.flags, 0, "frame {k}");
            assert_eq!(f.timestamp_ms, (128 + 64 * k as u32) * 20);
            assert_eq!(f.latent_dim, session.latent_dim());
            assert!(f.spike_bits != 0, "a real model codes standing");
        }
        let g = session.gravity_g().unwrap();
        assert!(
            (g[0] - 1.0).abs() < 0.01 && (g[1] + 0.2).abs() < 0.03,
            "{g:?}"
        );
    }

    #[test]
    fn nan_values_and_bad_timestamps_are_flagged_not_fatal() {
        let mut session = PhoneSession::open(MODEL, Mount::PortraitHip).unwrap();
        let mut events = standing(400, 0.0, 20.0);
        // Before the first good sample: counted, no frame to flag.
        events.insert(
            0,
            MotionEvent {
                t_ms: f64::NAN,
                ..events[0]
            },
        );
        events[200].acc_m_s2[1] = f64::NAN;
        events[201].t_ms = events[199].t_ms; // back in time
        events[202].t_ms = f64::INFINITY;
        events[203].rotation_deg_s = [f64::NAN; 3];
        let frames = run(&mut session, &events);
        assert_eq!(session.dropped_before_start(), 1);
        assert_eq!(session.events(), 401);
        let flagged: Vec<u8> = frames.iter().map(|f| f.flags).collect();
        assert_eq!(
            flagged.iter().filter(|&&f| f != 0).count(),
            1,
            "one frame carries all three: {flagged:?}"
        );
        assert!(
            flagged.contains(&(flags::NON_FINITE | flags::TIMESTAMP)),
            "{flagged:?}"
        );
    }

    #[test]
    fn hard_steps_beyond_two_g_are_flagged_saturated() {
        let mut session = PhoneSession::open(MODEL, Mount::HarWaist).unwrap();
        let mut events = standing(200, 0.0, 20.0);
        events[150].acc_m_s2[0] = 2.5 * STANDARD_GRAVITY_M_S2;
        let frames = run(&mut session, &events);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].flags, 0);
        assert_eq!(frames[1].flags, flags::SATURATED);
    }

    #[test]
    fn bad_blobs_say_why_and_are_not_kept() {
        let truncated = &MODEL[..MODEL.len() - 10];
        let err = PhoneSession::open(truncated, Mount::HarWaist)
            .err()
            .unwrap();
        assert!(err.to_string().contains("total-length"), "{err}");
        let mut flipped = MODEL.to_vec();
        flipped[100] ^= 1;
        let err = PhoneSession::open(&flipped, Mount::HarWaist).err().unwrap();
        assert!(err.to_string().contains("CRC-32 mismatch"), "{err}");
        // Other tests open blobs concurrently: look for these bytes, not at the count.
        let kept = |bytes: &[u8]| {
            let opened = OPENED_BLOBS.lock().unwrap();
            opened.iter().filter(|b| **b == bytes).count()
        };
        assert_eq!(kept(truncated) + kept(&flipped), 0);
        PhoneSession::open(MODEL, Mount::HarWaist).unwrap();
        PhoneSession::open(MODEL, Mount::PortraitHip).unwrap();
        assert_eq!(kept(MODEL), 1, "the same model twice is kept once");
    }

    #[test]
    fn timestamps_convert_to_whole_microseconds() {
        assert_eq!(timestamp_us(16.6667), Some(16_667));
        assert_eq!(timestamp_us(0.0), Some(0));
        assert_eq!(timestamp_us(-1.0), None);
        assert_eq!(timestamp_us(f64::NAN), None);
        assert_eq!(timestamp_us(1.0e300), None);
    }
}
