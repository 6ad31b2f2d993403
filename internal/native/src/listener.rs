//! Listeners: receive the event ids signalled on an event service, through a
//! file descriptor Go waits on and a non-blocking drain.

use std::collections::VecDeque;
use std::sync::Mutex;

use iceoryx2::port::listener::Listener;
use iceoryx2::prelude::*;

use crate::event::EventH;
use crate::guard::{drop_export, guard, handle, into_handle, need_out, on_cold, on_hot, put, Fail};
use crate::status::*;
use crate::{bounds, Svc};

/// A listener handle.
pub struct ListenerH {
    listener: Listener<Svc>,
    /// Ids drained from the listener that did not fit the caller's array yet.
    pending: Mutex<VecDeque<u64>>,
}

/// Creates a listener, when its event-id set fits the machine.
#[no_mangle]
pub unsafe extern "C" fn iox_listener_create(
    svc: *mut EventH,
    out: *mut *mut ListenerH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(svc, errbuf, errcap, |e| {
        need_out(out)?;
        // The service may come from another process with any largest id.
        let max_id = e.factory.static_config().event_id_max_value() as u64;
        let Some(need) = bounds::listener_bytes(max_id) else {
            let msg = format!("the service's MaxEventID {max_id} overflows the size of a listener's event-id set");
            return Err(Fail::new(IOX_E_INVALID_ARGUMENT, msg));
        };
        bounds::check_bytes("the listener (8 bytes per event id of the service)", need)
            .map_err(|m| Fail::new(IOX_E_OUT_OF_MEMORY, m))?;
        let listener = e.factory.listener_builder().create()?;
        put(out, into_handle(ListenerH { listener, pending: Mutex::new(VecDeque::new()) }));
        Ok(())
    })
}

drop_export!(iox_listener_drop, ListenerH);

/// The listener's file descriptor (owned by the library: never close it), or -1.
#[no_mangle]
pub unsafe extern "C" fn iox_listener_fd(h: *mut ListenerH) -> i32 {
    let mut fd = -1;
    guard(|| {
        if let Some(l) = handle(h) {
            fd = l.listener.file_descriptor().native_handle();
        }
        IOX_OK
    });
    fd
}

/// Drains pending notifications without blocking and writes up to `max` distinct
/// event ids into `ids`. Returns how many were written (when that is `max`, more may
/// remain), or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_listener_try_wait(h: *mut ListenerH, ids: *mut u64, max: usize) -> i64 {
    on_hot(h, |l| {
        if max == 0 || ids.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let mut pending = l.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut failed = None;
        if pending.len() < max {
            failed = l
                .listener
                .try_wait(|a| {
                    let id = a.id.as_value() as u64;
                    if !pending.contains(&id) {
                        pending.push_back(id);
                    }
                })
                .err();
        }
        let mut n = 0;
        while n < max {
            let Some(id) = pending.pop_front() else { break };
            *ids.add(n) = id;
            n += 1;
        }
        if let (0, Some(e)) = (n, failed) {
            return Err(crate::classify::Classify::status(&e));
        }
        Ok(n as i64)
    })
}
