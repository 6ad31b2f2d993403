//! Status codes: what every export returns (negated on the hot paths), and their
//! text. The numbers are part of the ABI; Go maps each to an error kind.

use crate::guard::guard;

pub const IOX_OK: i32 = 0;
pub const IOX_E_INVALID_ARGUMENT: i32 = 1;
pub const IOX_E_INVALID_NAME: i32 = 2;
pub const IOX_E_NOT_FOUND: i32 = 3;
pub const IOX_E_ALREADY_EXISTS: i32 = 4;
pub const IOX_E_INCOMPATIBLE_TYPE: i32 = 5;
pub const IOX_E_INCOMPATIBLE: i32 = 6;
pub const IOX_E_VERSION_MISMATCH: i32 = 7;
pub const IOX_E_LIMIT_REACHED: i32 = 8;
pub const IOX_E_PERMISSION: i32 = 9;
pub const IOX_E_TOO_LARGE: i32 = 10;
pub const IOX_E_WOULD_BLOCK: i32 = 11;
pub const IOX_E_BUFFER_TOO_SMALL: i32 = 12;
pub const IOX_E_OUT_OF_MEMORY: i32 = 13;
pub const IOX_E_CONNECTION: i32 = 14;
pub const IOX_E_BUSY: i32 = 15;
pub const IOX_E_INTERNAL: i32 = 16;
pub const IOX_E_PANIC: i32 = 17;
pub const IOX_E_EVENT_ID: i32 = 18;
pub const IOX_E_TOO_MANY_LOANS: i32 = 19;
pub const IOX_E_DISCONNECTED: i32 = 20;

const STATUS_TEXT: &[&str] = &[
    "ok",
    "invalid argument",
    "invalid name",
    "service does not exist",
    "service already exists",
    "service exists with an incompatible payload type",
    "service exists with incompatible settings",
    "iceoryx2 version mismatch",
    "limit reached (ports, nodes or services)",
    "insufficient permissions",
    "message too large",
    "a receiver's buffer is full",
    "buffer too small for the next message",
    "out of shared memory for samples",
    "connection failure",
    "service is being created or removed by another process",
    "internal failure",
    "panic inside the native library",
    "event id out of bounds",
    "too many samples loaned or borrowed at once",
    "the peer is not connected (none there, or it ended the exchange)",
];

/// Writes the text of `code` into `buf` (up to `cap` bytes) and returns its full length.
#[no_mangle]
pub extern "C" fn iox_status_text(code: i32, buf: *mut u8, cap: usize) -> usize {
    let mut n = 0;
    guard(|| {
        let text = STATUS_TEXT.get(code as usize).copied().unwrap_or("unknown status");
        n = write_text(text, buf, cap);
        IOX_OK
    });
    n
}

/// Copies `text` into `buf` (at most `cap` bytes, no terminator) and returns its
/// full length, so that the caller can tell a cut text.
pub fn write_text(text: &str, buf: *mut u8, cap: usize) -> usize {
    if !buf.is_null() && cap > 0 {
        let n = text.len().min(cap);
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buf, n) };
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_text() {
        assert_eq!(STATUS_TEXT.len(), IOX_E_DISCONNECTED as usize + 1);
        let mut buf = [0u8; 64];
        let n = iox_status_text(IOX_E_VERSION_MISMATCH, buf.as_mut_ptr(), buf.len());
        assert_eq!(&buf[..n], b"iceoryx2 version mismatch");
        assert_eq!(iox_status_text(-1, std::ptr::null_mut(), 0), "unknown status".len());
    }
}
