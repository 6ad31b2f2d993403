//! Samples in place: a loaned sample Go writes before sending, and a received
//! sample Go reads before releasing. Go reads each one's payload address and
//! length straight from the handle's first two words.

use std::sync::Arc;

use iceoryx2::sample_mut::SampleMut;
use iceoryx2::service::port_factory::PortFactory;

use crate::classify::send_error;
use crate::guard::{drop_export, guard_value, into_handle, on_hot};
use crate::notifier::NotifierH;
use crate::publisher::{full_check, PublisherH};
use crate::pubsub::PubSubFactory;
use crate::status::*;
use crate::subscriber::{payload_of, RxSample};
use crate::{Bytes, Hdr, Svc};

/// A loaned sample. Go reads the payload's address and length and the user
/// header's address from the first three words.
#[repr(C)]
pub struct SampleMutH {
    ptr: *mut u8,
    len: u64,
    hdr: *mut u8,
    sample: SampleMut<Svc, Bytes, Hdr>,
    /// The service, when the publisher is `BP_FAIL` (see `expected_recipients`).
    fail: Option<Arc<PubSubFactory>>,
}

/// Loans a writable sample of `len` bytes in shared memory. Returns the handle
/// (whose first two words are the payload address and length), or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_loan(h: *mut PublisherH, len: usize) -> i64 {
    on_hot(h, |p| {
        let (mut sample, ptr) = p.loan(len)?;
        let hdr = sample.user_header_mut() as *mut Hdr as *mut u8;
        let fail = p.fail.then(|| p.service.clone());
        Ok(into_handle(SampleMutH { ptr, len: len as u64, hdr, sample, fail }) as i64)
    })
}

/// Sends a loaned sample and frees its handle, whatever the outcome. Returns the
/// number of subscribers that got it, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_sample_mut_send(h: *mut SampleMutH) -> i64 {
    guard_value(|| {
        if h.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let s = Box::from_raw(h);
        let expected = s.fail.as_ref().map(|f| f.dynamic_config().number_of_subscribers());
        let k = s.sample.send().map_err(send_error)?;
        full_check(k, expected).map(|n| n as i64)
    })
}

/// Sends a loaned sample like `iox_sample_mut_send` and then, when it reached a
/// subscriber, notifies as `iox_publisher_send_notify` does (`ntf` may be
/// null, `id`, `word`): a zero-copy send in one crossing. `min_recipients` is
/// how many subscribers must get it (`u64::MAX`: as `iox_sample_mut_send`
/// asks); a subscriber that came after the caller looked may miss it.
#[no_mangle]
pub unsafe extern "C" fn iox_sample_mut_send_notify(
    h: *mut SampleMutH,
    ntf: *mut NotifierH,
    id: u64,
    word: *const u8,
    min_recipients: u64,
) -> i64 {
    guard_value(|| {
        if h.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let s = Box::from_raw(h);
        let expected = match min_recipients {
            u64::MAX => s.fail.as_ref().map(|f| f.dynamic_config().number_of_subscribers()),
            n => Some(n as usize),
        };
        let k = s.sample.send().map_err(send_error)?;
        let k = full_check(k, expected)?;
        if k > 0 {
            crate::waitword::wake(ntf, id, word)?;
        }
        Ok(k as i64)
    })
}

drop_export!(
    /// Returns a loaned sample unsent.
    iox_sample_mut_drop,
    SampleMutH
);

/// A borrowed (received) sample: payload address, length and user header
/// address first, as for a loaned one.
#[repr(C)]
pub struct SampleH {
    ptr: *const u8,
    len: u64,
    hdr: *const u8,
    _sample: RxSample,
}

impl SampleH {
    pub fn new(sample: RxSample) -> SampleH {
        let data = payload_of(&sample);
        let (ptr, len) = (data.as_ptr(), data.len() as u64);
        let hdr = sample.user_header() as *const Hdr as *const u8;
        SampleH { ptr, len, hdr, _sample: sample }
    }
}

drop_export!(
    /// Releases a borrowed sample: its memory goes back to the publisher.
    iox_sample_release,
    SampleH
);
