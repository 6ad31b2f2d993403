//! What every export does around its body, written once: catch a panic before it
//! unwinds into Go, check the handle it was given, and report a failure as a
//! status code plus, on cold calls, a description in the caller's error buffer.
//!
//! Exports use the handle forms (`on`, `on_cold`, `on_hot`) or, without a
//! handle, `cold`; their bodies return an [`Outcome`], so a crate error becomes a
//! status with `?` (see `classify`). Handles are freed through [`release`].
//! The closure forms `guard`, `guard_err` and `guard_value` and the helpers
//! `fail` and `refuse` serve bodies that compute the status themselves.

use std::panic::{catch_unwind, AssertUnwindSafe};

use iceoryx2::prelude::ServiceName;

use crate::classify::Classify;
use crate::diagnostics;
use crate::status::{write_text, IOX_E_INVALID_ARGUMENT, IOX_E_INVALID_NAME, IOX_E_PANIC, IOX_OK};

/// Why an export failed: its status code and, for the caller's error buffer, the
/// text that explains it (may be empty).
#[derive(Debug)]
pub struct Fail {
    pub code: i32,
    pub text: String,
}

impl Fail {
    pub fn new(code: i32, text: impl Into<String>) -> Self {
        Fail { code, text: text.into() }
    }
}

/// A bare status code: a failure with nothing more to say.
impl From<i32> for Fail {
    fn from(code: i32) -> Self {
        Fail { code, text: String::new() }
    }
}

/// A crate error: its status comes from `classify`, its text is its variant.
impl<E: Classify + std::fmt::Debug> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail { code: e.status(), text: format!("{e:?}") }
    }
}

/// What an export's body yields.
pub type Outcome<T = ()> = Result<T, Fail>;

/// Refuses with `IOX_E_INVALID_ARGUMENT` and `text`.
pub fn invalid<T>(text: impl Into<String>) -> Outcome<T> {
    Err(Fail::new(IOX_E_INVALID_ARGUMENT, text))
}

/// Runs `body`; a panic becomes what `on_panic` makes of its one-line description.
/// The only place where the library catches an unwind.
fn catch<R>(body: impl FnOnce() -> R, on_panic: impl FnOnce(String) -> R) -> R {
    diagnostics::install_panic_hook();
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| on_panic(diagnostics::take_last_panic()))
}

fn status_of(o: Outcome) -> i32 {
    match o {
        Ok(()) => IOX_OK,
        Err(f) => f.code,
    }
}

fn status_with_text(o: Outcome, errbuf: *mut u8, errcap: usize) -> i32 {
    match o {
        Ok(()) => IOX_OK,
        Err(f) => refuse(f.code, &f.text, errbuf, errcap),
    }
}

fn panic_text(errbuf: *mut u8, errcap: usize, line: &str) -> i32 {
    refuse(IOX_E_PANIC, &format!("panic inside the native library: {line}"), errbuf, errcap)
}

/// Runs a body that yields a status; a panic becomes `IOX_E_PANIC`.
pub fn guard<F: FnOnce() -> i32>(f: F) -> i32 {
    let _watch = crate::unfinished::watch_hot(); // see `unfinished`
    catch(f, |_| IOX_E_PANIC)
}

/// Cold-path form of `guard`: a panic also writes its one-line description into
/// the caller's error buffer.
pub fn guard_err<F: FnOnce() -> i32>(errbuf: *mut u8, errcap: usize, f: F) -> i32 {
    let _watch = crate::unfinished::watch(); // see `unfinished`: the crate may wait on what a dead process left
    catch(f, |line| panic_text(errbuf, errcap, &line))
}

/// Hot-path form: `f` yields a count (or handle address) on success and a status on
/// failure; the export returns the value, or the negated status.
pub fn guard_value<F: FnOnce() -> Result<i64, i32>>(f: F) -> i64 {
    let _watch = crate::unfinished::watch_hot(); // see `unfinished`: a port connects to new ones here
    catch(
        || match f() {
            Ok(v) => v,
            Err(code) => -(code as i64),
        },
        |_| -(IOX_E_PANIC as i64),
    )
}

/// A cold export without a handle: a failure's text goes to the error buffer.
pub fn cold(errbuf: *mut u8, errcap: usize, body: impl FnOnce() -> Outcome) -> i32 {
    guard_err(errbuf, errcap, || status_with_text(body(), errbuf, errcap))
}

/// An export on handle `h` that reports a status only.
///
/// # Safety
/// `h` is null or a live handle of type `T` made by this library.
pub unsafe fn on<T>(h: *mut T, body: impl FnOnce(&T) -> Outcome) -> i32 {
    guard(|| match handle(h) {
        Some(v) => status_of(body(v)),
        None => IOX_E_INVALID_ARGUMENT,
    })
}

/// A cold export on handle `h`: a failure's text goes to the error buffer.
///
/// # Safety
/// As for [`on`].
pub unsafe fn on_cold<T>(h: *mut T, errbuf: *mut u8, errcap: usize, body: impl FnOnce(&T) -> Outcome) -> i32 {
    guard_err(errbuf, errcap, || match handle(h) {
        Some(v) => status_with_text(body(v), errbuf, errcap),
        None => refuse(IOX_E_INVALID_ARGUMENT, "null handle", errbuf, errcap),
    })
}

/// A hot export on handle `h`: returns the body's value, or a negated status.
///
/// # Safety
/// As for [`on`].
pub unsafe fn on_hot<T>(h: *mut T, body: impl FnOnce(&T) -> Result<i64, i32>) -> i64 {
    guard_value(|| body(handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?))
}

/// Frees a handle made by [`into_handle`]; null is ignored, a panic in a drop is
/// swallowed (a drop function has nothing to report it through).
///
/// # Safety
/// `h` is null or a live handle of type `T` that is not used afterwards.
pub unsafe fn release<T>(h: *mut T) {
    catch(|| drop_handle(h), |_| ())
}

/// Writes the crate error `e` (its variant) into the error buffer and returns its status.
#[allow(dead_code)] // for bodies that compute their own status
pub fn fail<E: Classify + std::fmt::Debug>(e: E, errbuf: *mut u8, errcap: usize) -> i32 {
    let f = Fail::from(e);
    refuse(f.code, &f.text, errbuf, errcap)
}

/// Writes `msg` into the error buffer and returns `code`.
pub fn refuse(code: i32, msg: &str, errbuf: *mut u8, errcap: usize) -> i32 {
    write_text(msg, errbuf, errcap);
    code
}

/// The UTF-8 text of `len` bytes at `ptr` (empty when `len` is 0), or None.
///
/// # Safety
/// `ptr` points to `len` readable bytes when `len` > 0.
pub unsafe fn text_arg<'a>(ptr: *const u8, len: usize) -> Option<&'a str> {
    if len == 0 {
        return Some("");
    }
    if ptr.is_null() {
        return None;
    }
    std::str::from_utf8(std::slice::from_raw_parts(ptr, len)).ok()
}

/// Like [`text_arg`], for a required argument: refuses with `IOX_E_INVALID_ARGUMENT`.
///
/// # Safety
/// As for [`text_arg`].
pub unsafe fn text<'a>(what: &str, ptr: *const u8, len: usize) -> Outcome<&'a str> {
    text_arg(ptr, len).ok_or_else(|| Fail::new(IOX_E_INVALID_ARGUMENT, format!("{what} is not valid UTF-8")))
}

/// A service name checked with the crate's rules; a refusal is described in the
/// error buffer.
#[allow(dead_code)] // for bodies that compute their own status
pub fn service_name(ptr: *const u8, len: usize, errbuf: *mut u8, errcap: usize) -> Result<ServiceName, i32> {
    checked_service_name(ptr, len).map_err(|f| refuse(f.code, &f.text, errbuf, errcap))
}

/// [`service_name`] as an [`Outcome`].
pub fn checked_service_name(ptr: *const u8, len: usize) -> Outcome<ServiceName> {
    let Some(s) = (unsafe { text_arg(ptr, len) }) else {
        return Err(Fail::new(IOX_E_INVALID_NAME, "service name is not valid UTF-8"));
    };
    ServiceName::new(s).map_err(|e| Fail::new(IOX_E_INVALID_NAME, format!("invalid service name {s:?}: {e:?}")))
}

/// The handle `h` as a reference, or None when it is null.
///
/// # Safety
/// `h` is null or a live handle of type `T`.
pub unsafe fn handle<'a, T>(h: *mut T) -> Option<&'a T> {
    h.as_ref()
}

/// Writes `v` to the out-parameter `out` unless it is null.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
pub unsafe fn put<T>(out: *mut T, v: T) {
    if !out.is_null() {
        out.write(v);
    }
}

/// Refuses a null out-parameter for a new handle before anything is made.
pub fn need_out<T>(out: *mut *mut T) -> Outcome {
    if out.is_null() {
        return invalid("null out-parameter");
    }
    Ok(())
}

/// Moves `v` to the heap and returns its handle; [`release`] frees it.
pub fn into_handle<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Frees a handle made by [`into_handle`]; null is ignored.
///
/// # Safety
/// `h` is null or a live handle of type `T` that is not used afterwards.
pub unsafe fn drop_handle<T>(h: *mut T) {
    if !h.is_null() {
        drop(Box::from_raw(h));
    }
}

/// Declares the drop export of a handle type: `drop_export!(iox_x_drop, XH);`.
macro_rules! drop_export {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: *mut $ty) {
            $crate::guard::release(h)
        }
    };
}
pub(crate) use drop_export;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{IOX_E_BUSY, IOX_E_INTERNAL};

    #[test]
    fn a_panic_in_any_form_becomes_a_status() {
        assert_eq!(guard(|| panic!("x")), IOX_E_PANIC);
        assert_eq!(guard_value(|| panic!("x")), -(IOX_E_PANIC as i64));
        let mut buf = [0u8; 128];
        assert_eq!(cold(buf.as_mut_ptr(), buf.len(), || panic!("cold boom")), IOX_E_PANIC);
        assert!(String::from_utf8_lossy(&buf).contains("cold boom"));
    }

    #[test]
    fn a_null_handle_is_an_invalid_argument() {
        let h: *mut u32 = std::ptr::null_mut();
        assert_eq!(unsafe { on(h, |_| Ok(())) }, IOX_E_INVALID_ARGUMENT);
        assert_eq!(unsafe { on_hot(h, |_| Ok(1)) }, -(IOX_E_INVALID_ARGUMENT as i64));
        let mut buf = [0u8; 64];
        assert_eq!(unsafe { on_cold(h, buf.as_mut_ptr(), buf.len(), |_| Ok(())) }, IOX_E_INVALID_ARGUMENT);
        assert!(String::from_utf8_lossy(&buf).starts_with("null handle"));
    }

    #[test]
    fn a_failure_writes_its_text_once() {
        let mut buf = [0u8; 64];
        let st = cold(buf.as_mut_ptr(), buf.len(), || Err(Fail::new(IOX_E_BUSY, "being made")));
        assert_eq!(st, IOX_E_BUSY);
        assert!(buf.starts_with(b"being made\0"));
        let mut v = 7u32;
        assert_eq!(unsafe { on(&mut v, |x| if *x == 7 { Err(IOX_E_INTERNAL.into()) } else { Ok(()) }) }, IOX_E_INTERNAL);
        assert_eq!(unsafe { on(&mut v, |_| Ok(())) }, IOX_OK);
    }
}
