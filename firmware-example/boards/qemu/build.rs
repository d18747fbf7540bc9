//! Puts `memory.x` and an empty `device.x` (cortex-m-rt's `device` feature includes it;
//! the board names no interrupt handlers) on the linker path, writes the host's hash of
//! the square-root check (`src/sqrt_check.rs`) and copies the assets `cargo xtask
//! firmware` prepared (the sensor excerpt and the model blob) into OUT_DIR for
//! `include_bytes!`.

use std::path::PathBuf;
use std::{env, fs};

include!("src/sqrt_check.rs");

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x into OUT_DIR");
    fs::write(out.join("device.x"), "/* no device interrupt handlers */\n")
        .expect("write device.x into OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");

    // The host's roots of the square-root check, which the firmware must reproduce.
    println!("cargo:rerun-if-changed=src/sqrt_check.rs");
    fs::write(
        out.join("sqrt_check_hash.rs"),
        format!(
            "/// `sqrt_check_hash(f32::sqrt)` on the host that built the firmware.\n\
             const HOST_SQRT_HASH: u32 = {:#010x};\n",
            sqrt_check_hash(f32::sqrt)
        ),
    )
    .expect("write sqrt_check_hash.rs into OUT_DIR");

    for (var, name) in [
        ("VSC_FW_EXCERPT", "excerpt.bin"),
        ("VSC_FW_MODEL", "model.vscq"),
    ] {
        println!("cargo:rerun-if-env-changed={var}");
        let Some(path) = env::var_os(var) else {
            panic!(
                "{var} is not set: build the firmware with `cargo xtask firmware --board \
                 qemu`, which generates the sensor excerpt and picks the model blob"
            );
        };
        let path = PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        fs::copy(&path, out.join(name))
            .unwrap_or_else(|e| panic!("{var}={}: cannot copy: {e}", path.display()));
    }
}
