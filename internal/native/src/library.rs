//! The library itself: its ABI version, the iceoryx2 release under it, the
//! crate's log level and its naming rules.

use iceoryx2::prelude::*;

use crate::guard::{guard, text_arg};
use crate::status::*;
use crate::{ABI_VERSION, ICEORYX2_VERSION};

/// The ABI version this library implements.
#[no_mangle]
pub extern "C" fn iox_abi_version() -> u32 {
    ABI_VERSION
}

/// Writes the iceoryx2 crate version ("0.10.0") and returns its length.
#[no_mangle]
pub extern "C" fn iox_iceoryx2_version(buf: *mut u8, cap: usize) -> usize {
    write_text(ICEORYX2_VERSION, buf, cap)
}

/// Sets the crate's global log level: 0 trace .. 5 fatal.
#[no_mangle]
pub extern "C" fn iox_set_log_level(level: u32) -> i32 {
    guard(|| {
        let lvl = match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Fatal,
            _ => return IOX_E_INVALID_ARGUMENT,
        };
        set_log_level(lvl);
        IOX_OK
    })
}

/// Checks a service name with the crate's own rules.
#[no_mangle]
pub unsafe extern "C" fn iox_service_name_check(ptr: *const u8, len: usize) -> i32 {
    guard(|| {
        if len > 0 && ptr.is_null() {
            return IOX_E_INVALID_ARGUMENT;
        }
        match text_arg(ptr, len).map(ServiceName::new) {
            Some(Ok(_)) => IOX_OK,
            Some(Err(_)) | None => IOX_E_INVALID_NAME,
        }
    })
}
