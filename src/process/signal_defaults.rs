//! Which signals a step command is started with at their default disposition.
//!
//! Until its exec, the process `posix_spawn` makes shares the engine's memory, so no handler
//! of the engine may run in it: glibc sets every signal of it to its default or to ignored
//! before the exec. It does so signal by signal. A signal it is told to set to its default
//! (`posix_spawnattr_setsigdefault`) costs one `rt_sigaction`; any other is read first, then
//! set unless it is ignored: two (glibc 2.36). Told of SIGPIPE alone, as the standard
//! library tells it, a start made 121 of those calls, in the new process, while the
//! engine's thread waits for it to reach its exec. Told of every signal but those the
//! engine ignores, it makes 66: one a signal, and glibc's own two.
//!
//! What the program starts with is the same either way: a signal the engine handles or
//! leaves at its default is at its default (exec would reset a handler anyway), and one the
//! engine ignores stays ignored, as across any exec, but SIGPIPE, which the Rust runtime
//! ignores for itself and a program must get back. The engine's dispositions are read once
//! per run, at its first start. A signal the engine came to ignore after that would start
//! at its default rather than ignored; the engine ignores none after it started.
//!
//! Elsewhere than on glibc the set is SIGPIPE alone, as before: musl, for one, keeps track
//! of the handlers it installed and resets only those, and would make a call for each
//! signal of a larger set.

use std::mem::MaybeUninit;

/// The signals a step command starts with at their default disposition.
pub(super) struct SignalDefaults(libc::sigset_t);

impl SignalDefaults {
    /// Every signal but those this process ignores now, SIGPIPE included whatever its
    /// disposition; on other C libraries than glibc, SIGPIPE alone.
    pub(super) fn of_this_process() -> SignalDefaults {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set; its only error is a null pointer.
        unsafe { libc::sigemptyset(set.as_mut_ptr()) };
        // SAFETY: initialised just above.
        let mut set = unsafe { set.assume_init() };
        add(&mut set, libc::SIGPIPE);
        if cfg!(target_env = "gnu") {
            for signal in 1..=libc::SIGRTMAX() {
                if signal != libc::SIGPIPE && disposition(signal) != Some(libc::SIG_IGN) {
                    // glibc's own two are refused, and left to glibc, which ignores them in
                    // the new process.
                    add(&mut set, signal);
                }
            }
        }
        SignalDefaults(set)
    }

    /// For `posix_spawnattr_setsigdefault`.
    pub(super) fn as_ptr(&self) -> *const libc::sigset_t {
        &self.0
    }

    #[cfg(test)]
    fn contains(&self, signal: libc::c_int) -> bool {
        // SAFETY: an initialised set; a signal out of range answers -1.
        unsafe { libc::sigismember(&self.0, signal) == 1 }
    }
}

/// Adds `signal` to `set`, unless the C library keeps it for itself.
fn add(set: &mut libc::sigset_t, signal: libc::c_int) {
    // SAFETY: an initialised set; a signal that cannot be added answers -1 and changes
    // nothing.
    unsafe { libc::sigaddset(set, signal) };
}

/// The handler of `signal` in this process (`SIG_DFL`, `SIG_IGN` or a function), or `None`
/// when it cannot be read.
fn disposition(signal: libc::c_int) -> Option<libc::sighandler_t> {
    let mut current = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: only reads the disposition (no new one is given) into a zeroed struct.
    let read = unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) };
    // SAFETY: written by the call when it succeeded.
    (read == 0).then(|| unsafe { current.assume_init() }.sa_sigaction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_env = "gnu")]
    #[test]
    fn every_signal_but_the_ignored_ones_and_sigpipe_in_any_case() {
        // The Rust runtime ignores SIGPIPE in this process; the others here are at their
        // default unless a test changed them, which none of this crate's does.
        assert_eq!(disposition(libc::SIGPIPE), Some(libc::SIG_IGN));
        let defaults = SignalDefaults::of_this_process();
        for signal in [libc::SIGPIPE, libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
            assert!(defaults.contains(signal), "signal {signal}");
        }
        assert!(defaults.contains(libc::SIGRTMAX()));
    }

    #[cfg(target_env = "gnu")]
    #[test]
    fn a_signal_this_process_ignores_is_left_out() {
        // SIGXFSZ: nothing in these tests raises it, and a start made meanwhile by another
        // test would only leave it ignored in its program.
        // SAFETY: sets no handler, only ignores the signal, then puts the former back.
        let former = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        let defaults = SignalDefaults::of_this_process();
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGXFSZ, former) };
        assert!(!defaults.contains(libc::SIGXFSZ));
        assert!(defaults.contains(libc::SIGXCPU));
    }
}
