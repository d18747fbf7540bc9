//! DeviceMotion readings → the units and axes of the training data.
//!
//! **Units.** `accelerationIncludingGravity` is in m/s², `rotationRate` in deg/s (W3C
//! Device Orientation and Motion); HAR/HAPT store g and rad/s. We divide by standard
//! gravity, 9.80665 m/s² per g, and multiply by π/180.
//!
//! **Axes and signs.** Both sides use the same device frame: x to the right of the screen,
//! y to its top, z out of the screen. The HAR phone (Samsung Galaxy S II) recorded through
//! Android's sensor API, whose frame and signs the W3C spec copies: acceleration
//! including gravity is *proper* acceleration, +9.81 m/s² on the axis that points up at
//! rest (screen up on a table: z ≈ +9.8), and rotations follow the right-hand rule.
//! The spec also fixes `rotationRate.alpha`, `.beta`, `.gamma` as the rates about x, y
//! and z (not the z-x-y order of `deviceorientation`'s angles), as Chrome, Firefox and
//! Safari implement it. So a phone worn exactly like the HAR phone needs no rotation,
//! only the unit change.
//!
//! **How the HAR phone was worn** (measured on the HAPT recordings, mean total
//! acceleration per activity): standing and walking read x ≈ +1 g, y ≈ −0.2, z ≈ 0;
//! lying reads x ≈ 0.07, y ≈ +0.84, z ≈ +0.43. So +x pointed up along the body and +y
//! out of the front of the body (up when lying on the back): the phone sat in landscape
//! on the side of the belt, right edge up, top edge forward, and z = x × y pointed to
//! the wearer's left, i.e. out of the screen when worn on the left hip.
//!
//! [`Mount::HarWaist`] is that placement (identity). [`Mount::PortraitHip`] is the
//! same place in portrait, top edge up and screen facing out, which is how a modern
//! phone usually sits in a hip holster: its +y is the training +x, its −x the
//! training +y, its z unchanged (a proper rotation about z by −90°, so the gyroscope
//! axes map like the accelerometer's).

use core::f64::consts::PI;

use edge_runtime::preprocess::ImuSample;

/// m/s² per g (standard gravity), the factor between DeviceMotion and HAR units.
pub const STANDARD_GRAVITY_M_S2: f64 = 9.80665;

/// The HAR phone's accelerometer range: HAPT values lie in [−2.01, 2.00] g, so larger
/// phone readings are clipped to what the training data could contain, and flagged.
pub const TRAINING_ACC_RANGE_G: f32 = 2.0;
/// The HAR phone's gyroscope range: HAPT values lie in [−10.01, 10.00] rad/s.
pub const TRAINING_GYRO_RANGE_RAD_S: f32 = 10.0;

/// Where and how the phone is worn; picks the rotation from phone to training axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mount {
    /// As in HAR: landscape on the left hip, screen out, right edge up, top forward.
    HarWaist,
    /// Portrait on the left hip, screen out, top edge up.
    PortraitHip,
}

/// One training axis as a signed phone axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SignedAxis {
    phone_axis: usize,
    negate: bool,
}

const fn axis(phone_axis: usize, negate: bool) -> SignedAxis {
    SignedAxis { phone_axis, negate }
}

impl Mount {
    pub const ALL: [Mount; 2] = [Mount::HarWaist, Mount::PortraitHip];

    /// The name the page and the command line use.
    pub const fn name(self) -> &'static str {
        match self {
            Mount::HarWaist => "har-waist",
            Mount::PortraitHip => "portrait-hip",
        }
    }

    pub fn from_name(name: &str) -> Option<Mount> {
        Mount::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Training axis *i* = ± phone axis: a signed permutation, so a NaN on one phone axis
    /// stays on one training axis, and every mount is a proper rotation (determinant +1).
    const fn axes(self) -> [SignedAxis; 3] {
        match self {
            Mount::HarWaist => [axis(0, false), axis(1, false), axis(2, false)],
            Mount::PortraitHip => [axis(1, false), axis(0, true), axis(2, false)],
        }
    }
}

/// One `devicemotion` event as the page reads it (null fields become NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionEvent {
    /// `event.timeStamp`, ms.
    pub t_ms: f64,
    /// `accelerationIncludingGravity` x, y, z in m/s².
    pub acc_m_s2: [f64; 3],
    /// `rotationRate` alpha, beta, gamma in deg/s: the rates about the phone's x, y, z.
    pub rotation_deg_s: [f64; 3],
}

/// A phone reading in training units and axes, and whether a value had to be clipped
/// to the HAR phone's range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingSample {
    pub sample: ImuSample,
    pub saturated: bool,
}

fn rotate(mount: Mount, phone: [f64; 3]) -> [f64; 3] {
    mount.axes().map(|a| {
        let v = phone[a.phone_axis];
        if a.negate { -v } else { v }
    })
}

fn unrotate(mount: Mount, training: [f64; 3]) -> [f64; 3] {
    let mut phone = [0.0; 3];
    for (a, v) in mount.axes().into_iter().zip(training) {
        phone[a.phone_axis] = if a.negate { -v } else { v };
    }
    phone
}

/// Clips finite values to ±`range` (NaN passes through, the preprocessing rejects it).
fn clip(values: [f64; 3], range: f32, saturated: &mut bool) -> [f32; 3] {
    values.map(|v| {
        let v = v as f32;
        if v.abs() > range {
            *saturated = true;
            v.clamp(-range, range)
        } else {
            v
        }
    })
}

/// DeviceMotion units and axes → HAR units and axes (g, rad/s). The arithmetic is in
/// f64, rounded once to f32, so the page and the host give bit-identical samples.
pub fn to_training(mount: Mount, event: &MotionEvent) -> TrainingSample {
    let acc_g = rotate(mount, event.acc_m_s2.map(|a| a / STANDARD_GRAVITY_M_S2));
    let gyro_rad_s = rotate(mount, event.rotation_deg_s.map(|r| r * (PI / 180.0)));
    let mut saturated = false;
    let sample = ImuSample {
        acc_g: clip(acc_g, TRAINING_ACC_RANGE_G, &mut saturated),
        gyro_rad_s: clip(gyro_rad_s, TRAINING_GYRO_RANGE_RAD_S, &mut saturated),
    };
    TrainingSample { sample, saturated }
}

/// The inverse of [`to_training`] (without the clipping): what a phone worn as `mount`
/// reports for a HAR sample, as (`accelerationIncludingGravity` m/s², `rotationRate`
/// alpha/beta/gamma deg/s). Replays of HAPT recordings as DeviceMotion events use it.
pub fn from_training(mount: Mount, acc_g: [f64; 3], gyro_rad_s: [f64; 3]) -> ([f64; 3], [f64; 3]) {
    (
        unrotate(mount, acc_g).map(|a| a * STANDARD_GRAVITY_M_S2),
        unrotate(mount, gyro_rad_s).map(|r| r * (180.0 / PI)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(acc_m_s2: [f64; 3], rotation_deg_s: [f64; 3]) -> MotionEvent {
        MotionEvent {
            t_ms: 0.0,
            acc_m_s2,
            rotation_deg_s,
        }
    }

    fn close(a: [f32; 3], b: [f32; 3]) -> bool {
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn upright_at_rest_reads_plus_one_g_on_training_x() {
        // W3C: proper acceleration, +9.8 m/s² on the axis pointing up. Worn as in HAR
        // the phone's right edge (+x) points up; in portrait its top edge (+y) does.
        let g = STANDARD_GRAVITY_M_S2;
        let har = to_training(Mount::HarWaist, &event([g, 0.0, 0.0], [0.0; 3]));
        assert!(close(har.sample.acc_g, [1.0, 0.0, 0.0]), "{har:?}");
        let portrait = to_training(Mount::PortraitHip, &event([0.0, g, 0.0], [0.0; 3]));
        assert!(
            close(portrait.sample.acc_g, [1.0, 0.0, 0.0]),
            "{portrait:?}"
        );
        // Lying on the back: the HAR phone's top edge (+y) points up.
        let lying = to_training(Mount::PortraitHip, &event([-g, 0.0, 0.0], [0.0; 3]));
        assert!(close(lying.sample.acc_g, [0.0, 1.0, 0.0]), "{lying:?}");
        assert!(!har.saturated && !portrait.saturated && !lying.saturated);
    }

    #[test]
    fn rotation_rate_alpha_beta_gamma_are_x_y_z() {
        let har = to_training(Mount::HarWaist, &event([0.0; 3], [90.0, -45.0, 180.0]));
        let half_pi = core::f32::consts::FRAC_PI_2;
        assert!(close(
            har.sample.gyro_rad_s,
            [half_pi, -half_pi / 2.0, 2.0 * half_pi]
        ));
        // Portrait: the rate about the phone's y (beta) is the rate about training x.
        let portrait = to_training(Mount::PortraitHip, &event([0.0; 3], [90.0, -45.0, 180.0]));
        assert!(close(
            portrait.sample.gyro_rad_s,
            [-half_pi / 2.0, -half_pi, 2.0 * half_pi]
        ));
    }

    #[test]
    fn every_mount_is_a_proper_rotation_and_inverts() {
        for mount in Mount::ALL {
            let m = mount.axes();
            let mut matrix = [[0i32; 3]; 3];
            for (i, a) in m.iter().enumerate() {
                matrix[i][a.phone_axis] = if a.negate { -1 } else { 1 };
            }
            let det = matrix[0][0] * (matrix[1][1] * matrix[2][2] - matrix[1][2] * matrix[2][1])
                - matrix[0][1] * (matrix[1][0] * matrix[2][2] - matrix[1][2] * matrix[2][0])
                + matrix[0][2] * (matrix[1][0] * matrix[2][1] - matrix[1][1] * matrix[2][0]);
            assert_eq!(det, 1, "{mount:?} is not a rotation");
            let acc_g = [0.93, -0.21, 0.12];
            let gyro = [0.5, -1.25, 2.0];
            let (acc, rate) = from_training(mount, acc_g, gyro);
            let back = to_training(
                mount,
                &MotionEvent {
                    t_ms: 0.0,
                    acc_m_s2: acc,
                    rotation_deg_s: rate,
                },
            );
            assert!(close(back.sample.acc_g, acc_g.map(|v| v as f32)));
            assert!(close(back.sample.gyro_rad_s, gyro.map(|v| v as f32)));
            assert_eq!(Mount::from_name(mount.name()), Some(mount));
        }
        assert_eq!(Mount::from_name("pocket"), None);
    }

    #[test]
    fn values_beyond_the_har_range_are_clipped_and_flagged_nan_passes() {
        let g = STANDARD_GRAVITY_M_S2;
        let hard = to_training(
            Mount::HarWaist,
            &event([3.0 * g, f64::NAN, 0.0], [0.0, 0.0, -1000.0]),
        );
        assert!(hard.saturated);
        assert_eq!(hard.sample.acc_g[0], TRAINING_ACC_RANGE_G);
        assert!(hard.sample.acc_g[1].is_nan());
        assert_eq!(hard.sample.gyro_rad_s[2], -TRAINING_GYRO_RANGE_RAD_S);
    }
}
