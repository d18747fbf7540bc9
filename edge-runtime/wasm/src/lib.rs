//! edge-runtime in the browser: the phone web app's binding (wasm-bindgen).
//!
//! [`phone`] turns DeviceMotion readings into the units and axes of the training data,
//! [`session`] runs them through edge-runtime's resampler, preprocessing and int8
//! encoder, and [`web`] exposes that to JavaScript. Only [`web`] touches wasm-bindgen;
//! the rest is plain Rust that the host runs too, so a test can demand that the page
//! and the host compute the same frames.
//!
//! The core crate stays as it is: no feature of edge-runtime exists for wasm.

pub mod phone;
pub mod session;
pub mod web;

pub use phone::{MotionEvent, Mount};
pub use session::PhoneSession;
