//! The JavaScript face of [`PhoneSession`]: `new Session(bytes, mount)`, `push(...)` per
//! `devicemotion` event, then `next_frame()` until it returns `undefined`.

use std::collections::VecDeque;

use edge_runtime::frame::{Frame, MAX_WIRE_LEN};
use wasm_bindgen::prelude::*;

use crate::phone::{MotionEvent, Mount};
use crate::session::PhoneSession;

/// A stream from a phone's motion sensors through one model.
#[wasm_bindgen]
pub struct Session {
    inner: PhoneSession,
    ready: VecDeque<Frame>,
}

#[wasm_bindgen]
impl Session {
    /// Opens a `.vscq` blob; throws an `Error` whose message says what is wrong with the
    /// blob, or names the mounts when `mount` is unknown.
    #[wasm_bindgen(constructor)]
    pub fn new(blob: &[u8], mount: &str) -> Result<Session, JsError> {
        let mount = Mount::from_name(mount).ok_or_else(|| {
            let names: Vec<&str> = Mount::ALL.iter().map(|m| m.name()).collect();
            JsError::new(&format!(
                "unknown mount {mount:?}; expected one of {}",
                names.join(", ")
            ))
        })?;
        let inner = PhoneSession::open(blob, mount).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Session {
            inner,
            ready: VecDeque::new(),
        })
    }

    /// One `devicemotion` event: `event.timeStamp` (ms), `accelerationIncludingGravity`
    /// x, y, z (m/s²) and `rotationRate` alpha, beta, gamma (deg/s); pass NaN for null.
    /// Returns the number of frames waiting in [`Session::next_frame`].
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        t_ms: f64,
        acc_x: f64,
        acc_y: f64,
        acc_z: f64,
        alpha: f64,
        beta: f64,
        gamma: f64,
    ) -> usize {
        let event = MotionEvent {
            t_ms,
            acc_m_s2: [acc_x, acc_y, acc_z],
            rotation_deg_s: [alpha, beta, gamma],
        };
        let ready = &mut self.ready;
        self.inner.push(&event, |frame| ready.push_back(frame));
        self.ready.len()
    }

    /// The oldest frame not yet taken, or `undefined`.
    pub fn next_frame(&mut self) -> Option<WebFrame> {
        self.ready.pop_front().map(|frame| WebFrame { frame })
    }

    #[wasm_bindgen(getter)]
    pub fn latent_dim(&self) -> u8 {
        self.inner.latent_dim()
    }

    #[wasm_bindgen(getter)]
    pub fn blob_crc(&self) -> u32 {
        self.inner.blob_crc()
    }

    #[wasm_bindgen(getter)]
    pub fn mount(&self) -> String {
        self.inner.mount().name().to_owned()
    }

    /// Acceleration in training axes over about the last second, g (`[x, y, z]`, empty
    /// before the first event): upright and worn as chosen, x ≈ +1.
    #[wasm_bindgen(getter)]
    pub fn gravity_g(&self) -> Vec<f32> {
        self.inner.gravity_g().map(Vec::from).unwrap_or_default()
    }

    /// Events with an unusable timestamp before the first good sample (not flagged).
    #[wasm_bindgen(getter)]
    pub fn dropped_before_start(&self) -> f64 {
        self.inner.dropped_before_start() as f64
    }
}

/// One frame, as the host's `vsc listen` decodes it.
#[wasm_bindgen]
pub struct WebFrame {
    frame: Frame,
}

#[wasm_bindgen]
impl WebFrame {
    #[wasm_bindgen(getter)]
    pub fn sequence(&self) -> u32 {
        self.frame.sequence
    }

    /// Stream time when the window completed: 20 ms per 50 Hz grid sample.
    #[wasm_bindgen(getter)]
    pub fn timestamp_ms(&self) -> u32 {
        self.frame.timestamp_ms
    }

    /// Bits of `edge_runtime::frame::flags` (names in [`flag_names`]).
    #[wasm_bindgen(getter)]
    pub fn flags(&self) -> u8 {
        self.frame.flags
    }

    #[wasm_bindgen(getter)]
    pub fn latent_dim(&self) -> u8 {
        self.frame.latent_dim
    }

    /// Bit *j* set ⇔ dimension *j* is active (a `BigInt`).
    #[wasm_bindgen(getter)]
    pub fn spike_bits(&self) -> u64 {
        self.frame.spike_bits
    }

    /// The active dimensions, ascending.
    #[wasm_bindgen(getter)]
    pub fn active_dims(&self) -> Vec<u8> {
        self.frame.active().map(|(j, _, _)| j as u8).collect()
    }

    #[wasm_bindgen(getter)]
    pub fn gamma_q15(&self) -> Vec<i16> {
        self.frame.gamma_q15.to_vec()
    }

    #[wasm_bindgen(getter)]
    pub fn mu_q(&self) -> Vec<i16> {
        self.frame.mu_q.to_vec()
    }

    #[wasm_bindgen(getter)]
    pub fn mu_scale(&self) -> f32 {
        self.frame.mu_scale
    }

    /// γ of the active dimensions.
    #[wasm_bindgen(getter)]
    pub fn gamma(&self) -> Vec<f32> {
        self.frame.active().map(|(_, g, _)| g).collect()
    }

    /// μ of the active dimensions.
    #[wasm_bindgen(getter)]
    pub fn mu(&self) -> Vec<f32> {
        self.frame.active().map(|(_, _, m)| m).collect()
    }

    /// Predicted activity class id (1..=6 for HAR), 0 without an activity head or code.
    #[wasm_bindgen(getter)]
    pub fn activity(&self) -> u8 {
        self.frame.activity
    }

    /// Int8 score of the predicted class.
    #[wasm_bindgen(getter)]
    pub fn activity_score(&self) -> i8 {
        self.frame.activity_score
    }

    /// The frame in wire format (delimiters included), as the firmware sends it: what
    /// `vsc listen` reads, and what the browser test compares byte for byte.
    pub fn wire(&self) -> Vec<u8> {
        let mut out = [0u8; MAX_WIRE_LEN];
        // MAX_WIRE_LEN holds any valid frame, and frames from the pipeline are valid.
        let len = self.frame.encode(&mut out).unwrap_or(0);
        out[..len].to_vec()
    }
}

/// Names of the frame flag bits, in bit order.
#[wasm_bindgen]
pub fn flag_names() -> Vec<String> {
    edge_runtime::frame::flags::NAMES
        .iter()
        .map(|&n| n.to_owned())
        .collect()
}
