//! What the library tells about itself: panics it caught (each logged as one
//! line through the crate's logger) and the count Go reads to find them.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

static HOOK: Once = Once::new();
static HOOKED: AtomicBool = AtomicBool::new(false);
static PANICS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs (once) the hook that turns a panic into one short log line through
/// the crate's logger, instead of the default message and backtrace on stderr.
#[inline]
pub fn install_panic_hook() {
    if HOOKED.load(Ordering::Relaxed) {
        return;
    }
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "unknown cause".to_string()
            };
            let mut msg = msg.lines().next().unwrap_or("").to_string();
            if msg.len() > 200 {
                let mut end = 200;
                while !msg.is_char_boundary(end) {
                    end -= 1;
                }
                msg.truncate(end);
                msg.push('…');
            }
            let line = match info.location() {
                Some(l) => format!("panic at {}:{}: {msg}", l.file(), l.line()),
                None => format!("panic: {msg}"),
            };
            iceoryx2_log::error!(from "iox_native", "{}", line);
            LAST_PANIC.with(|p| *p.borrow_mut() = line);
        }));
        HOOKED.store(true, Ordering::Relaxed);
    });
}

/// The last panic's one-line description on this thread (empty when none).
pub fn take_last_panic() -> String {
    LAST_PANIC.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// Panics since the library was loaded.
pub fn panic_count() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// How many panics the library has caught since it was loaded (each was logged
/// as one line through the crate's logger and returned as `IOX_E_PANIC`).
#[no_mangle]
pub extern "C" fn iox_panic_count() -> u64 {
    panic_count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_counted_and_described_in_one_line() {
        install_panic_hook();
        let before = panic_count();
        let r = std::panic::catch_unwind(|| panic!("boom\nsecond line"));
        assert!(r.is_err());
        assert!(panic_count() > before, "the panic is counted");
        let d = take_last_panic();
        assert!(d.starts_with("panic at ") && d.contains("boom"), "{d}");
        assert!(!d.contains("second line"), "{d}");
        assert_eq!(take_last_panic(), "");
    }
}
