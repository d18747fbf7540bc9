extern crate std;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::blob::CRC_LEN;
use crate::encoder::Encoder;
use crate::frame::{FrameDecoder, flags};
use crate::preprocess::{ChannelSet, HOP_LEN, WINDOW_LEN, windows_of_recording};
use crate::sensor::{AccelRange, GyroRange, RawSample};
use crate::stream::run_recorded;

/// Raw MPU-6050 registers of `n` samples of a smooth synthetic movement.
fn excerpt_bytes(n: usize) -> Vec<u8> {
    let mut bytes = Excerpt::header(AccelRange::G4, GyroRange::Dps1000, 2, 3, 0, n as u32).to_vec();
    for i in 0..n {
        let t = i as f32 / 50.0;
        let raw = RawSample {
            acc: [
                AccelRange::G4.g_to_counts(1.0 + 0.3 * (6.0 * t).sin()),
                AccelRange::G4.g_to_counts(0.2 * (3.0 * t).cos()),
                AccelRange::G4.g_to_counts(-0.1 + 0.05 * (11.0 * t).sin()),
            ],
            temperature: 0,
            gyro: [
                GyroRange::Dps1000.rad_s_to_counts((5.0 * t).sin()),
                GyroRange::Dps1000.rad_s_to_counts(0.3 * (2.0 * t).cos()),
                GyroRange::Dps1000.rad_s_to_counts(-0.5),
            ],
        };
        bytes.extend_from_slice(&raw.to_registers());
    }
    bytes
}

/// A real int8 blob (random weights, calibrated on the excerpt's windows).
fn blob_bytes(excerpt: &[u8]) -> Vec<u8> {
    let excerpt = Excerpt::parse(excerpt).unwrap();
    let samples: Vec<ImuSample> = (0..excerpt.len())
        .map(|i| {
            RawSample::from_registers(excerpt.registers(i).unwrap())
                .scale(excerpt.accel_range, excerpt.gyro_range)
        })
        .collect();
    let mut windows = Vec::new();
    windows_of_recording(&samples, ChannelSet::ALL, |w| {
        windows.push(w.as_slice().to_vec())
    })
    .unwrap();
    let f32_encoder = crate::F32Encoder::random(ChannelSet::ALL, WINDOW_LEN, 32, 16, 3);
    crate::quant::quantise(&f32_encoder, &windows).unwrap()
}

/// Collects the wire frames it is sent.
#[derive(Default)]
struct VecSink {
    wire: Vec<Vec<u8>>,
}

impl FrameSink for VecSink {
    async fn send(&mut self, wire: &[u8]) {
        self.wire.push(wire.to_vec());
    }
}

impl VecSink {
    fn frames(&self) -> Vec<Frame> {
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        for w in &self.wire {
            let before = frames.len();
            decoder.feed(w, |f| frames.push(f));
            assert_eq!(
                frames.len(),
                before + 1,
                "each send is exactly one whole frame"
            );
        }
        assert_eq!(decoder.rejected_chunks, 0);
        frames
    }
}

fn host_frames(excerpt: &[u8], blob: &[u8], faults: core::ops::Range<usize>) -> Vec<Frame> {
    let encoder = Encoder::new(ModelBlob::parse(blob).unwrap());
    let mut frames = Vec::new();
    run_recorded(
        Excerpt::parse(excerpt).unwrap(),
        ChannelSet::ALL,
        encoder,
        faults,
        |f| frames.push(f.clone()),
    )
    .unwrap();
    frames
}

fn device_frames(
    excerpt: &[u8],
    blob: &[u8],
    faults: core::ops::Range<usize>,
) -> (Vec<Frame>, RunStats) {
    let encoder = Encoder::new(ModelBlob::parse(blob).unwrap());
    let mut source = ReplaySource::new(Excerpt::parse(excerpt).unwrap(), faults).unwrap();
    let mut stage = Pipeline::new(ChannelSet::ALL, encoder);
    let mut sink = VecSink::default();
    let stats = block_on(run(&mut source, &mut stage, &mut sink));
    (sink.frames(), stats)
}

#[test]
fn the_loop_over_the_replay_sends_the_host_frames() {
    let excerpt = excerpt_bytes(WINDOW_LEN + 4 * HOP_LEN);
    let blob = blob_bytes(&excerpt);
    let host = host_frames(&excerpt, &blob, 0..0);
    let (device, stats) = device_frames(&excerpt, &blob, 0..0);
    assert_eq!(host.len(), 5);
    assert!(
        host.iter().any(|f| f.spike_bits != 0),
        "the model codes something"
    );
    assert_eq!(device, host);
    assert_eq!(stats.samples as usize, WINDOW_LEN + 4 * HOP_LEN);
    assert_eq!((stats.failed_reads, stats.frames, stats.dropped), (0, 5, 0));
}

#[test]
fn bus_faults_flag_frames_like_the_host() {
    let excerpt = excerpt_bytes(WINDOW_LEN + 5 * HOP_LEN);
    let blob = blob_bytes(&excerpt);
    // A short fault, then more than a hop of failed reads.
    let faults = WINDOW_LEN + HOP_LEN..WINDOW_LEN + 2 * HOP_LEN + 10;
    let host = host_frames(&excerpt, &blob, faults.clone());
    let (device, stats) = device_frames(&excerpt, &blob, faults.clone());
    assert_eq!(device, host);
    assert_eq!(stats.failed_reads as usize, faults.len());
    assert!(
        device
            .iter()
            .any(|f| f.flags == flags::SENSOR_ERROR | flags::NO_CODE),
        "a hop of failed reads gives a code-less frame"
    );
}

#[test]
fn a_dead_sensor_gives_one_flagged_frame_per_hop() {
    let excerpt = excerpt_bytes(WINDOW_LEN + 4 * HOP_LEN);
    let blob = blob_bytes(&excerpt);
    // Dead from the start: every read fails, and the loop still reports at the frame rate.
    let (device, stats) = device_frames(&excerpt, &blob, 0..usize::MAX);
    assert_eq!(stats.samples, 0);
    assert_eq!(device.len(), (WINDOW_LEN + 4 * HOP_LEN) / HOP_LEN);
    for (k, f) in device.iter().enumerate() {
        assert_eq!(f.flags, flags::SENSOR_ERROR | flags::NO_CODE);
        assert_eq!(f.sequence, k as u32);
        assert_eq!(f.timestamp_ms, ((k + 1) * HOP_LEN * 20) as u32);
    }
}

#[test]
fn without_a_model_frames_carry_no_code_and_say_why() {
    let excerpt = excerpt_bytes(WINDOW_LEN + 2 * HOP_LEN);
    let mut source = ReplaySource::new(Excerpt::parse(&excerpt).unwrap(), 0..0).unwrap();
    let mut stage = Pipeline::new(ChannelSet::ALL, None::<Encoder<'_>>);
    let mut sink = VecSink::default();
    block_on(run(&mut source, &mut stage, &mut sink));
    let frames = sink.frames();
    assert_eq!(frames.len(), 3);
    for f in &frames {
        assert_eq!(f.flags, flags::ENCODER_ERROR | flags::NO_CODE);
        assert_eq!((f.latent_dim, f.spike_bits), (0, 0));
    }
}

/// A source that is not ready on every other poll, as an interrupt-driven one is.
struct Sometimes<'a> {
    inner: ReplaySource<'a>,
}

impl SampleSource for Sometimes<'_> {
    async fn next(&mut self) -> Reading {
        let mut ready = false;
        core::future::poll_fn(|_| {
            if ready {
                core::task::Poll::Ready(())
            } else {
                ready = true;
                core::task::Poll::Pending
            }
        })
        .await;
        self.inner.next().await
    }
}

#[test]
fn a_source_that_is_sometimes_pending_gives_the_same_frames() {
    let excerpt = excerpt_bytes(WINDOW_LEN + 2 * HOP_LEN);
    let blob = blob_bytes(&excerpt);
    let mut source = Sometimes {
        inner: ReplaySource::new(Excerpt::parse(&excerpt).unwrap(), 0..0).unwrap(),
    };
    let mut stage = Pipeline::new(
        ChannelSet::ALL,
        Encoder::new(ModelBlob::parse(&blob).unwrap()),
    );
    let mut sink = VecSink::default();
    block_on(run(&mut source, &mut stage, &mut sink));
    assert_eq!(sink.frames(), host_frames(&excerpt, &blob, 0..0));
}

/// A stage that completes `burst` code-less frames on every sample.
struct Burst {
    burst: usize,
    sequence: u32,
}

impl FrameStage for Burst {
    fn sample(&mut self, _t_us: u64, _s: ImuSample, _sat: bool, mut on_frame: impl FnMut(Frame)) {
        for _ in 0..self.burst {
            on_frame(Frame::without_code(self.sequence, 0, 0, 8));
            self.sequence += 1;
        }
    }
    fn sensor_error(&mut self, _t_us: u64, _on_frame: impl FnMut(Frame)) {}
}

#[test]
fn frames_completed_together_are_all_sent_in_order_until_the_outbox_is_full() {
    let excerpt = excerpt_bytes(3);
    for burst in [1, 7, OUTBOX_FRAMES, OUTBOX_FRAMES + 5] {
        let mut source = ReplaySource::new(Excerpt::parse(&excerpt).unwrap(), 0..0).unwrap();
        let mut stage = Burst { burst, sequence: 0 };
        let mut sink = VecSink::default();
        let stats = block_on(run(&mut source, &mut stage, &mut sink));
        let sent = burst.min(OUTBOX_FRAMES);
        assert_eq!(stats.frames as usize, 3 * sent, "burst {burst}");
        assert_eq!(stats.dropped as usize, 3 * (burst - sent), "burst {burst}");
        let frames = sink.frames();
        // Within each sample's burst the first `sent` frames go out, in order.
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(f.sequence as usize, (k / sent) * burst + k % sent);
        }
    }
}

#[test]
fn a_52_hz_source_through_the_timed_pipeline_gives_frames_at_the_hop_rate() {
    // 20 s of a 52 Hz source with its own clock.
    struct Imu52 {
        n: u64,
    }
    impl SampleSource for Imu52 {
        async fn next(&mut self) -> Reading {
            if self.n == 52 * 20 {
                return Reading::End;
            }
            let t_us = self.n * 1_000_000 / 52;
            self.n += 1;
            let t = t_us as f32 * 1e-6;
            Reading::Sample {
                t_us,
                sample: ImuSample {
                    acc_g: [1.0 + 0.3 * (6.0 * t).sin(), 0.1, -0.1],
                    gyro_rad_s: [(5.0 * t).sin(), 0.0, 0.2],
                },
                saturated: false,
            }
        }
    }
    let excerpt = excerpt_bytes(WINDOW_LEN);
    let blob = blob_bytes(&excerpt);
    let mut stage = TimedPipeline::new(
        ChannelSet::ALL,
        Encoder::new(ModelBlob::parse(&blob).unwrap()),
    );
    let mut sink = VecSink::default();
    block_on(run(&mut Imu52 { n: 0 }, &mut stage, &mut sink));
    let frames = sink.frames();
    // 20 s on the 50 Hz grid is 1000 samples: windows complete at 128, 192, …, 960.
    assert_eq!(frames.len(), (1000 - WINDOW_LEN) / HOP_LEN + 1);
    for (k, f) in frames.iter().enumerate() {
        assert_eq!(f.flags, 0);
        assert_eq!(f.timestamp_ms as usize, (WINDOW_LEN + k * HOP_LEN) * 20);
    }
}

#[test]
fn a_52_hz_sensor_that_stops_gives_flagged_frames_through_the_timed_pipeline() {
    // 3 s of samples, then only data-ready timeouts (one per 60 ms wait) for 10 s.
    struct Dying {
        n: u64,
    }
    impl SampleSource for Dying {
        async fn next(&mut self) -> Reading {
            self.n += 1;
            let good = 52 * 3;
            if self.n <= good {
                let t_us = self.n * 1_000_000 / 52;
                let t = t_us as f32 * 1e-6;
                return Reading::Sample {
                    t_us,
                    sample: ImuSample {
                        acc_g: [1.0, 0.1 * (4.0 * t).sin(), -0.1],
                        gyro_rad_s: [0.1, 0.0, 0.2],
                    },
                    saturated: false,
                };
            }
            let t_us = good * 1_000_000 / 52 + (self.n - good) * 60_000;
            if t_us > 13_000_000 {
                return Reading::End;
            }
            Reading::Failed {
                t_us,
                fault: SensorFault::Timeout,
            }
        }
    }
    let excerpt = excerpt_bytes(WINDOW_LEN);
    let blob = blob_bytes(&excerpt);
    let mut stage = TimedPipeline::new(
        ChannelSet::ALL,
        Encoder::new(ModelBlob::parse(&blob).unwrap()),
    );
    let mut sink = VecSink::default();
    block_on(run(&mut Dying { n: 0 }, &mut stage, &mut sink));
    let frames = sink.frames();
    let dead: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.flags & flags::NO_CODE != 0)
        .collect();
    // About 10 s of silence at one frame per 1.28 s hop, all flagged.
    assert!(
        (6..=8).contains(&dead.len()),
        "{} code-less frames",
        dead.len()
    );
    for f in &dead {
        assert_ne!(f.flags & flags::SENSOR_ERROR, 0);
    }
    assert!(
        frames
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1)
    );
    assert!(
        frames
            .windows(2)
            .all(|w| w[1].timestamp_ms > w[0].timestamp_ms)
    );
}

#[test]
fn the_model_is_found_in_a_larger_erased_region() {
    let blob = blob_bytes(&excerpt_bytes(WINDOW_LEN));
    let mut region = vec![0xFF; blob.len() + 5000];
    region[..blob.len()].copy_from_slice(&blob);
    let model = model_in_region(&region).unwrap();
    assert_eq!(model.as_bytes(), &blob[..]);
    // Exactly the region's size works too.
    assert!(model_in_region(&blob).is_ok());
}

#[test]
fn an_invalid_model_region_says_why() {
    let blob = blob_bytes(&excerpt_bytes(WINDOW_LEN));
    let mut region = vec![0xFF; blob.len() + 64];
    assert_eq!(model_in_region(&region), Err(ModelError::Erased));
    assert_eq!(
        model_in_region(&region).unwrap_err().reason(),
        "no model: the model region is erased"
    );

    region[..blob.len()].copy_from_slice(&blob);
    region[HEADER_LEN + 3] ^= 0x40;
    let err = model_in_region(&region).unwrap_err();
    assert!(
        matches!(err, ModelError::Blob(BlobError::Crc { .. })),
        "{err:?}"
    );
    assert_eq!(err.reason(), "CRC mismatch");

    // A blob cut off by the end of the region.
    let cut = &blob[..blob.len() - 10];
    let err = model_in_region(cut).unwrap_err();
    assert_eq!(
        err,
        ModelError::LongerThanRegion {
            total: blob.len() as u32,
            region: cut.len()
        }
    );

    // Garbage, a zeroed region (QEMU's empty RAM), and regions too small for a header.
    let err =
        model_in_region(b"not a model blob, just some text........................").unwrap_err();
    assert_eq!(err.reason(), "bad magic (not a VSCQ blob)");
    assert!(matches!(
        model_in_region(&[0u8; 4096]),
        Err(ModelError::Blob(BlobError::BadMagic { .. }))
    ));
    assert!(matches!(
        model_in_region(&blob[..10]),
        Err(ModelError::Blob(BlobError::TooShort { .. }))
    ));
    assert!(matches!(
        model_in_region(&[]),
        Err(ModelError::Blob(BlobError::TooShort { .. }))
    ));
    assert_eq!(
        model_in_region(&[0xFF; 3]).unwrap_err(),
        ModelError::Blob(BlobError::TooShort { len: 3 })
    );

    // A newer format version.
    let mut newer = blob.clone();
    newer[4] = 0x7F;
    assert_eq!(
        model_in_region(&newer).unwrap_err().reason(),
        "unsupported format version"
    );
    // A trailer CRC that no longer fits after the length grew.
    let mut longer = blob.clone();
    longer.extend_from_slice(&[0xFF; CRC_LEN]);
    let total = (blob.len() + CRC_LEN) as u32;
    longer[8..12].copy_from_slice(&total.to_le_bytes());
    assert_eq!(
        model_in_region(&longer).unwrap_err().reason(),
        "CRC mismatch"
    );
}

#[test]
fn every_blob_error_has_its_own_reason() {
    use crate::blob::Section;
    let errors = [
        BlobError::TooShort { len: 0 },
        BlobError::BadMagic { found: [0; 4] },
        BlobError::UnsupportedVersion { found: 9 },
        BlobError::BadHeaderLen { found: 1 },
        BlobError::TotalLength {
            field: 1,
            actual: 2,
        },
        BlobError::Crc {
            stored: 1,
            computed: 2,
        },
        BlobError::BadChannels { bits: 0 },
        BlobError::DimOutOfRange {
            field: "hidden_dim",
            value: 9999,
            max: 512,
        },
        BlobError::InputDimMismatch {
            input_dim: 1,
            channels: 2,
            window_len: 3,
        },
        BlobError::BadFeatures { code: 7 },
        BlobError::BadSpikeHead { code: 7 },
        BlobError::Length {
            expected: 1,
            actual: 2,
        },
        BlobError::Reserved { offset: 42 },
        BlobError::BadScale { field: "mu_scale" },
        BlobError::BadChannelScaling { index: 0 },
        BlobError::BadWeightScale {
            section: Section::Mu,
            row: 0,
        },
        BlobError::BiasOutOfRange {
            section: Section::Mu,
            row: 0,
            value: 0,
        },
        BlobError::NegativeMultiplier {
            section: Section::Mu,
            row: 0,
            value: -1,
        },
        BlobError::ShiftOutOfRange {
            section: Section::Mu,
            row: 0,
            value: 0,
        },
    ];
    let reasons: Vec<&str> = errors.iter().map(blob_error_reason).collect();
    for (i, r) in reasons.iter().enumerate() {
        assert!(!r.is_empty());
        assert!(!reasons[..i].contains(r), "{r:?} is used twice");
    }
    let others = [
        ModelError::Erased.reason(),
        ModelError::LongerThanRegion {
            total: 1,
            region: 0,
        }
        .reason(),
    ];
    for r in others {
        assert!(!reasons.contains(&r));
    }
}

#[test]
fn the_fault_log_reports_changes_only() {
    let mut log = FaultLog::new();
    assert_eq!(log.record(None), None);
    assert_eq!(
        log.record(Some(SensorFault::Timeout)),
        Some(FaultChange::Failing(SensorFault::Timeout))
    );
    for _ in 0..100 {
        assert_eq!(log.record(Some(SensorFault::Timeout)), None);
    }
    assert_eq!(
        log.record(Some(SensorFault::Bus)),
        Some(FaultChange::Failing(SensorFault::Bus))
    );
    assert_eq!(log.failed_in_a_row, 102);
    assert_eq!(
        log.record(None),
        Some(FaultChange::Recovered { failed: 102 })
    );
    assert_eq!(log.failed_in_a_row, 0);
    assert_eq!(log.record(None), None);
}

#[test]
fn sensor_faults_have_distinct_reasons() {
    let all = [
        SensorFault::Bus,
        SensorFault::WrongChipId,
        SensorFault::Timeout,
        SensorFault::Init,
    ];
    for (i, f) in all.iter().enumerate() {
        assert!(all[..i].iter().all(|g| g.reason() != f.reason()));
    }
}
