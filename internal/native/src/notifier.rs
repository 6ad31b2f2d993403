//! Notifiers: signal event ids to every listener of an event service.

use iceoryx2::port::notifier::Notifier;
use iceoryx2::prelude::*;

use crate::event::EventH;
use crate::guard::{drop_export, into_handle, need_out, on_cold, on_hot, put, Fail};
use crate::status::*;
use crate::{bounds, classify::Classify, Svc};

/// A notifier handle.
pub struct NotifierH {
    pub notifier: Notifier<Svc>,
}

impl NotifierH {
    /// Notifies every listener with event `id`; the number of listeners reached.
    pub fn notify(&self, id: u64) -> Result<usize, i32> {
        self.notifier.notify_with_custom_event_id(EventId::new(id as usize)).map_err(|e| e.status())
    }
}

/// Creates a notifier whose plain notifications carry `default_id`.
#[no_mangle]
pub unsafe extern "C" fn iox_notifier_create(
    svc: *mut EventH,
    default_id: u64,
    out: *mut *mut NotifierH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(svc, errbuf, errcap, |e| {
        need_out(out)?;
        let need = bounds::notifier_bytes(e.factory.static_config().max_listeners() as u64);
        bounds::check_bytes("the notifier (a connection slot per listener the service admits)", need)
            .map_err(|m| Fail::new(IOX_E_OUT_OF_MEMORY, m))?;
        let notifier = e.factory.notifier_builder().default_event_id(EventId::new(default_id as usize)).create()?;
        put(out, into_handle(NotifierH { notifier }));
        Ok(())
    })
}

drop_export!(iox_notifier_drop, NotifierH);

/// Notifies every listener with event `id`. Returns how many listeners were reached,
/// or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_notifier_notify(h: *mut NotifierH, id: u64) -> i64 {
    on_hot(h, |n| n.notify(id).map(|k| k as i64))
}
