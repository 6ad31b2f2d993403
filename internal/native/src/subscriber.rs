//! Subscribers: drain messages into a caller's buffer in one crossing, or
//! borrow one in place.

use std::sync::Mutex;

use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::sample::Sample;

use crate::classify::Classify;
use crate::guard::{drop_export, into_handle, need_out, on, on_cold, on_hot, put, Fail};
use crate::publisher::existing_shape;
use crate::pubsub::PubSubH;
use crate::sample::SampleH;
use crate::status::*;
use crate::{bounds, Bytes, Hdr, Svc};

pub type RxSample = Sample<Svc, Bytes, Hdr>;

/// A subscriber handle.
pub struct SubscriberH {
    subscriber: Subscriber<Svc, Bytes, Hdr>,
    header: usize,
    /// A received sample that did not fit the caller's buffer; delivered first next time.
    pending: Mutex<Option<RxSample>>,
}

/// Creates a subscriber with its own buffer of `buffer_size` messages (0 = the
/// service's largest).
#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_create(
    svc: *mut PubSubH,
    buffer_size: u64,
    out: *mut *mut SubscriberH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(svc, errbuf, errcap, |s| {
        need_out(out)?;
        let c = s.factory.static_config();
        if buffer_size > c.subscriber_max_buffer_size() as u64 {
            let msg = format!("SubscriberBuffer {buffer_size} is over the service's BufferSize {}", c.subscriber_max_buffer_size());
            return Err(Fail::new(IOX_E_INVALID_ARGUMENT, msg));
        }
        let shape = existing_shape(c, 2, 1);
        let need = shape.subscriber() + shape.publishers * shape.connection();
        bounds::check_bytes("the subscriber (with a connection to every publisher the service admits)", need)
            .map_err(|m| Fail::new(IOX_E_OUT_OF_MEMORY, m))?;
        let mut b = s.factory.subscriber_builder();
        if buffer_size > 0 {
            b = b.buffer_size(buffer_size as usize);
        }
        let subscriber = b.create()?;
        put(out, into_handle(SubscriberH { subscriber, header: s.header, pending: Mutex::new(None) }));
        Ok(())
    })
}

/// Writes the subscriber's unique port id (low, high).
#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_id(h: *mut SubscriberH, lo: *mut u64, hi: *mut u64) -> i32 {
    on(h, |s| {
        let v = s.subscriber.id().value();
        put(lo, v as u64);
        put(hi, (v >> 64) as u64);
        Ok(())
    })
}

drop_export!(iox_subscriber_drop, SubscriberH);

/// The payload of a received sample as bytes.
pub fn payload_of(s: &RxSample) -> &[u8] {
    let p = s.payload();
    unsafe { std::slice::from_raw_parts(p.as_ptr() as *const u8, p.len()) }
}

impl SubscriberH {
    /// The next message: the one kept back last time, or a new one.
    pub fn next(&self, pending: &mut Option<RxSample>) -> Result<Option<RxSample>, i32> {
        if let Some(s) = pending.take() {
            return Ok(Some(s));
        }
        self.subscriber.receive().map_err(|e| e.status())
    }

    /// Copies the user header of `sample` to `dst` (the service's header size).
    unsafe fn copy_header(&self, sample: &RxSample, dst: *mut u8) {
        let src = sample.user_header() as *const Hdr as *const u8;
        std::ptr::copy_nonoverlapping(src, dst, self.header);
    }
}

/// Drains up to `max` messages into `buf` back to back; `lens[i]` receives the length
/// of message i. Returns how many were copied, or a negated status. A message larger
/// than the room left stays queued for the next call; one larger than the whole `cap`
/// gives `IOX_E_BUFFER_TOO_SMALL` with its length in `lens[0]` (and its header in
/// `hdrs`, when asked for). When `hdrs` is not
/// null and the service has a user header, message i's header is copied to
/// `hdrs + i * header_size`.
#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_receive(
    h: *mut SubscriberH,
    buf: *mut u8,
    cap: usize,
    lens: *mut u64,
    max: usize,
    hdrs: *mut u8,
) -> i64 {
    on_hot(h, |s| {
        if (cap > 0 && buf.is_null()) || max == 0 || lens.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let mut pending = s.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0usize;
        let mut used = 0usize;
        while n < max {
            let sample = match s.next(&mut pending) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(c) if n == 0 => return Err(c),
                Err(_) => break,
            };
            let data = payload_of(&sample);
            if data.len() > cap - used {
                if n == 0 {
                    *lens = data.len() as u64;
                    if s.header > 0 && !hdrs.is_null() {
                        // the caller may drop the message and still needs its header
                        s.copy_header(&sample, hdrs);
                    }
                    *pending = Some(sample);
                    return Err(IOX_E_BUFFER_TOO_SMALL);
                }
                *pending = Some(sample);
                break;
            }
            if !data.is_empty() {
                std::ptr::copy_nonoverlapping(data.as_ptr(), buf.add(used), data.len());
            }
            *lens.add(n) = data.len() as u64;
            if s.header > 0 && !hdrs.is_null() {
                s.copy_header(&sample, hdrs.add(n * s.header));
            }
            used += data.len();
            n += 1;
        }
        Ok(n as i64)
    })
}

/// Borrows the next message in place. Returns its handle (whose first two words are
/// the payload address and length, valid until `iox_sample_release`), 0 when no
/// message waits, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_borrow(h: *mut SubscriberH) -> i64 {
    on_hot(h, |s| {
        let mut pending = s.pending.lock().unwrap_or_else(|p| p.into_inner());
        match s.next(&mut pending)? {
            Some(sample) => Ok(into_handle(SampleH::new(sample)) as i64),
            None => Ok(0),
        }
    })
}

/// Writes 1 to `out` when a message is waiting.
#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_has_samples(h: *mut SubscriberH, out: *mut u32) -> i32 {
    on(h, |s| {
        let pending = s.pending.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        let waiting = pending || s.subscriber.has_samples()?;
        put(out, waiting as u32);
        Ok(())
    })
}
