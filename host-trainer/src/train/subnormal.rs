//! Flush-to-zero for subnormal floats on the training threads.
//!
//! Subnormal operands and results can send x86 vector instructions down a slow microcode
//! path; with them flushed a `paper` step on a 2-core Intel Xeon ran 1.3× and an `edge` step
//! up to 1.5× faster (README, issue 15). TensorFlow flushes them on its threads the same way.
//!
//! Rust's rule: the compiler assumes the default floating-point environment, so changing
//! MXCSR outside one asm block is undefined behaviour by the letter of `core::arch`'s
//! documentation (`_mm_setcsr`). What the optimiser may do with that assumption is evaluate a
//! float operation as if the mode were off: fold it at compile time, or move a pure float
//! operation across the switch when both are inlined into one function. The mode is therefore
//! set only around whole calls (the training loop runs behind calls into the pool, its data
//! known only at run time), and the option stays off for config files that do not ask for it.

/// Runs `f` with subnormals flushed to zero (`on`) on the calling thread and on every thread
/// of the current rayon pool, and puts each thread's floating-point mode back afterwards,
/// also when `f` panics. Everything a training step computes runs on those threads.
///
/// # Safety
/// Inside `f`, float operations that Rust evaluates at run time treat subnormal operands and
/// results as zero, while any the compiler folds or moves keep IEEE semantics: `f` must not
/// depend on subnormal values (see the module documentation for the rule this bends).
pub unsafe fn with_subnormals_flushed<R>(on: bool, f: impl FnOnce() -> R) -> R {
    if !on {
        return f();
    }
    // The calling thread first and the pool second, restored in the opposite order: when the
    // caller is one of the pool's threads, the pool's saved mode for it is already flushed.
    let own = flush_this_thread();
    let pool = rayon::broadcast(|_| flush_this_thread());
    let _restore = Restore { own, pool };
    f()
}

struct Restore {
    own: Mode,
    pool: Vec<Mode>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let pool = &self.pool;
        rayon::broadcast(|ctx| set_mode(pool[ctx.index()]));
        set_mode(self.own);
    }
}

/// A thread's MXCSR (x86-64), or nothing elsewhere.
type Mode = u32;

#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

/// Sets FTZ (subnormal results become 0) and DAZ (subnormal operands read as 0) in the
/// calling thread's MXCSR, keeping its other bits, and returns the mode it had.
#[cfg(target_arch = "x86_64")]
fn flush_this_thread() -> Mode {
    let old = mode();
    set_mode(old | FTZ_DAZ);
    old
}

#[cfg(target_arch = "x86_64")]
fn mode() -> Mode {
    let mut csr: u32 = 0;
    // SAFETY: stmxcsr writes the thread's MXCSR to the 4 bytes of `csr`, nothing else.
    unsafe {
        core::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    csr
}

#[cfg(target_arch = "x86_64")]
fn set_mode(csr: Mode) {
    // SAFETY: ldmxcsr reads 4 bytes from `csr`; every value passed here is one that stmxcsr
    // produced, possibly with FTZ and DAZ set, so no reserved bit is set.
    unsafe {
        core::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn flush_this_thread() -> Mode {
    0
}

#[cfg(not(target_arch = "x86_64"))]
fn set_mode(_: Mode) {}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// Half the smallest normal f32, computed at run time. Not inlined: inlined next to the
    /// mode switch, the multiplication may be moved before it (the hazard the module
    /// documentation describes), which this test saw happen.
    #[inline(never)]
    fn halved_min_normal() -> f32 {
        black_box(f32::MIN_POSITIVE) * black_box(0.5)
    }

    #[test]
    fn subnormals_are_flushed_on_every_pool_thread_inside_and_kept_outside() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            let before: Vec<f32> = rayon::broadcast(|_| halved_min_normal());
            assert!(before.iter().all(|v| v.is_subnormal()), "{before:?}");
            // SAFETY: the closure only checks that subnormal results become zero.
            let inside = unsafe {
                with_subnormals_flushed(true, || {
                    let mut all = rayon::broadcast(|_| halved_min_normal());
                    all.push(halved_min_normal());
                    all
                })
            };
            assert_eq!(inside, vec![0.0; 4]);
            let after: Vec<f32> = rayon::broadcast(|_| halved_min_normal());
            assert!(after.iter().all(|v| v.is_subnormal()), "{after:?}");
            // SAFETY: as above; `false` changes no mode.
            let off = unsafe { with_subnormals_flushed(false, halved_min_normal) };
            assert!(off.is_subnormal());
        });
        // A caller outside the pool gets its own mode back too.
        // SAFETY: as above.
        let outside = unsafe { with_subnormals_flushed(true, halved_min_normal) };
        assert_eq!(outside, 0.0);
        assert!(halved_min_normal().is_subnormal());
    }
}
