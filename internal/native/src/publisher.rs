//! Publishers: loan, fill and send messages, in one crossing per message or per
//! batch, with the full-receiver behaviour Go asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::port::BackpressureAction;
use iceoryx2::prelude::*;
use iceoryx2::sample_mut::SampleMut;
use iceoryx2::service::static_config::publish_subscribe::StaticConfig as PubSubStatic;

use crate::classify::{loan_error, send_error};
use crate::guard::{drop_export, into_handle, invalid, need_out, on, on_cold, on_hot, put, Fail, Outcome};
use crate::notifier::NotifierH;
use crate::pubsub::{PubSubFactory, PubSubH};
use crate::status::*;
use crate::{bounds, Bytes, Hdr, Svc};

/// Full-receiver behaviour of a publisher on a service without safe overflow:
/// skip a full receiver (any value but `BP_FAIL` does).
#[allow(dead_code)]
pub const BP_DISCARD: u32 = 0;
/// Report `IOX_E_WOULD_BLOCK` (after `spin` retries) instead of waiting.
pub const BP_FAIL: u32 = 1;

#[repr(C)]
pub struct PublisherOpts {
    /// Initial capacity in bytes of one sample; the data segment grows beyond it.
    pub initial_max_len: u64,
    /// 0 = static (never grows), 1 = power-of-two growth, 2 = best fit growth.
    pub allocation: u64,
    pub max_loaned: u64,
    pub backpressure: u64,
    pub spin: u64,
}

/// A publisher handle.
pub struct PublisherH {
    publisher: Publisher<Svc, Bytes, Hdr>,
    /// `BP_FAIL`: a send that misses a subscriber that was there before it fails.
    pub fail: bool,
    pub service: Arc<PubSubFactory>,
    /// Chunks whose pages are known to be backed: address → bytes populated.
    /// Chunks are reused, so after the first round a loan needs no system call.
    populated: Mutex<HashMap<usize, usize>>,
    size: usize,
    dynamic: bool,
    header: usize,
}

/// The shape of an existing service, as the bounds see it, for a publisher with
/// `loans` loaned samples of `elements` payload elements.
pub fn existing_shape(c: &PubSubStatic, loans: u128, elements: u128) -> bounds::PubSubShape {
    let p = &c.message_type_details().payload;
    bounds::PubSubShape {
        publishers: c.max_publishers() as u128,
        subscribers: c.max_subscribers() as u128,
        nodes: c.max_nodes() as u128,
        buffer: c.subscriber_max_buffer_size() as u128,
        borrowed: c.subscriber_max_borrowed_samples() as u128,
        history: c.history_size() as u128,
        loans,
        size: (p.size() as u128).max(1),
        alignment: p.alignment() as u128,
        header_size: c.message_type_details().user_header.size() as u128,
        elements,
    }
}

/// Creates a publisher on the service.
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_create(
    svc: *mut PubSubH,
    opts: *const PublisherOpts,
    out: *mut *mut PublisherH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(svc, errbuf, errcap, |s| {
        let Some(o) = opts.as_ref() else { return invalid("null options") };
        need_out(out)?;
        let elems = if s.dynamic { (o.initial_max_len as usize).div_ceil(s.size).max(1) } else { 1 };
        let alloc = match o.allocation {
            0 => AllocationStrategy::Static,
            1 => AllocationStrategy::PowerOfTwo,
            _ => AllocationStrategy::BestFit,
        };
        publisher_bounds(s, o, elems)?;
        let mut b = s
            .factory
            .publisher_builder()
            .initial_max_slice_len(elems)
            .allocation_strategy(alloc)
            .backpressure_strategy(BackpressureStrategy::DiscardData);
        if o.max_loaned > 0 {
            b = b.max_loaned_samples(o.max_loaned as usize);
        }
        if o.backpressure as u32 == BP_FAIL {
            let spin = o.spin;
            b = b.set_backpressure_handler(move |info: &iceoryx2::port::BackpressureInfo| {
                if info.retries < spin {
                    BackpressureAction::Retry
                } else {
                    BackpressureAction::DiscardDataAndFail
                }
            });
        }
        let publisher = b.create()?;
        put(
            out,
            into_handle(PublisherH {
                publisher,
                fail: o.backpressure as u32 == BP_FAIL,
                service: s.factory.clone(),
                populated: Mutex::new(HashMap::new()),
                size: s.size,
                dynamic: s.dynamic,
                header: s.header,
            }),
        );
        Ok(())
    })
}

/// Most retries a `BP_FAIL` publisher may spin on a full receiver: beyond them
/// iceoryx2's adaptive wait sleeps inside the send call, which Go cannot cancel.
pub const MAX_SPIN: u64 = 10_000;

/// Checks a publisher request against the service it belongs to: the loans and
/// spin it asks for, and the memory its data segment, bookkeeping and
/// connections need.
fn publisher_bounds(s: &PubSubH, o: &PublisherOpts, elems: usize) -> Outcome {
    if o.max_loaned > bounds::MAX_COUNT {
        return invalid(format!("MaxLoans {} is over {}", o.max_loaned, bounds::MAX_COUNT));
    }
    if o.backpressure as u32 == BP_FAIL && o.spin > MAX_SPIN {
        return invalid(format!("FailWhenFull spin {} is over {MAX_SPIN}", o.spin));
    }
    let c = s.factory.static_config();
    let loans = if o.max_loaned > 0 { o.max_loaned as u128 } else { 2 };
    let shape = existing_shape(c, loans, elems as u128);
    let knobs: &[bounds::Knob] = if s.dynamic { &[bounds::Knob::Elements, bounds::Knob::Loans] } else { &[bounds::Knob::Loans] };
    bounds::check_fit("the publisher", &shape, knobs, bounds::PubSubShape::publisher, s.size as u128)
        .map_err(|m| Fail::new(IOX_E_OUT_OF_MEMORY, m))
}

drop_export!(iox_publisher_drop, PublisherH);

extern "C" {
    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
}

/// Messages from this size on have their pages backed before they are written.
pub const POPULATE_FROM: usize = 64 << 10;

/// Backs the pages of `len` bytes at `ptr` with memory before anything writes
/// them. A shared-memory file system that is full makes the first write to a page
/// raise SIGBUS, which kills the process; MADV_POPULATE_WRITE (Linux 5.14) reports
/// it as an error instead. False means there is no memory for the message.
pub fn populate(ptr: *mut u8, len: usize) -> bool {
    const MADV_POPULATE_WRITE: i32 = 23;
    if len < POPULATE_FROM {
        return true;
    }
    let page = 4096usize;
    let start = (ptr as usize) & !(page - 1);
    let end = ptr as usize + len;
    if unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_POPULATE_WRITE) } == 0 {
        return true;
    }
    // EINVAL: a kernel without MADV_POPULATE_WRITE; go on as before.
    std::io::Error::last_os_error().raw_os_error() == Some(22)
}

impl PublisherH {
    /// Number of elements for a payload of `len` bytes, or an error status.
    fn elements(&self, len: usize) -> Result<usize, i32> {
        if self.dynamic {
            if len % self.size != 0 {
                return Err(IOX_E_INVALID_ARGUMENT);
            }
            Ok(len / self.size)
        } else if len == self.size {
            Ok(1)
        } else {
            Err(IOX_E_INVALID_ARGUMENT)
        }
    }

    /// Loans a sample of `len` bytes whose pages are backed; its payload address.
    pub fn loan(&self, len: usize) -> Result<(SampleMut<Svc, Bytes, Hdr>, *mut u8), i32> {
        let n = self.elements(len)?;
        let uninit = unsafe { self.publisher.loan_custom_payload(n) }.map_err(loan_error)?;
        let mut sample = unsafe { uninit.assume_init() };
        let ptr = sample.payload_mut().as_mut_ptr() as *mut u8;
        if len >= POPULATE_FROM {
            let mut done = self.populated.lock().unwrap_or_else(|p| p.into_inner());
            if done.get(&(ptr as usize)).is_none_or(|&n| n < len) {
                if !populate(ptr, len) {
                    return Err(IOX_E_OUT_OF_MEMORY); // dropping the sample returns the chunk
                }
                done.insert(ptr as usize, len);
            }
        }
        Ok((sample, ptr))
    }

    /// Loans, fills and sends one message; the number of subscribers that got it.
    ///
    /// # Safety
    /// `data` points to `len` readable bytes, `hdr` is null or points to the
    /// service's header size of readable bytes.
    pub unsafe fn send_one(&self, data: *const u8, len: usize, hdr: *const u8) -> Result<usize, i32> {
        if len > 0 && data.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let (mut sample, ptr) = self.loan(len)?;
        if len > 0 {
            std::ptr::copy_nonoverlapping(data, ptr, len);
        }
        if self.header > 0 && !hdr.is_null() {
            let dst = sample.user_header_mut() as *mut Hdr as *mut u8;
            std::ptr::copy_nonoverlapping(hdr, dst, self.header);
        }
        let expected = self.expected_recipients();
        let k = sample.send().map_err(send_error)?;
        full_check(k, expected)
    }

    /// For a `BP_FAIL` publisher, the subscribers registered before a send.
    ///
    /// iceoryx2 0.10.0 calls the backpressure handler only while a connection
    /// has both ends attached (`zero_copy_connection::common::blocking_send`
    /// checks `is_connected()`). A subscriber attaches its end when it first
    /// updates its connections (on creation, if the publisher already exists,
    /// otherwise on its next receive). A full buffer of a subscriber that has not
    /// attached yet gives `NoConnectedReceiverAndBufferIsFull`, which the sender
    /// skips silently (`port/details/sender.rs`): the send returns Ok with that
    /// subscriber missing from the count, handler or not. Counting the
    /// subscribers before the send finds that case too.
    fn expected_recipients(&self) -> Option<usize> {
        self.fail.then(|| self.service.dynamic_config().number_of_subscribers())
    }
}

/// `IOX_E_WOULD_BLOCK` when a send reached fewer subscribers than were
/// registered before it (a full one was skipped), else the count.
pub fn full_check(k: usize, expected: Option<usize>) -> Result<usize, i32> {
    match expected {
        Some(e) if k < e => Err(IOX_E_WOULD_BLOCK),
        _ => Ok(k),
    }
}

/// Loans a sample of `len` bytes, copies `data` into it (and the service's user header
/// from `hdr`, when the service has one and `hdr` is not null) and sends it: one
/// crossing. Returns the number of subscribers that got it, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_send_copy(h: *mut PublisherH, data: *const u8, len: usize, hdr: *const u8) -> i64 {
    on_hot(h, |p| p.send_one(data, len, hdr).map(|n| n as i64))
}

/// Sends one message like `iox_publisher_send_copy` and, when it reached at least
/// one subscriber and `ntf` is not null, notifies event `id` on `ntf`: the whole
/// hot path of a channel send in one crossing. With a receiver's wait word
/// (`word`, not null) it notifies only when the word says the receiver parks
/// (see `waitword`). Returns the number of subscribers that got the message, or
/// a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_send_notify(
    h: *mut PublisherH,
    data: *const u8,
    len: usize,
    hdr: *const u8,
    ntf: *mut NotifierH,
    id: u64,
    word: *const u8,
) -> i64 {
    on_hot(h, |p| {
        let k = p.send_one(data, len, hdr)?;
        if k > 0 {
            crate::waitword::wake(ntf, id, word)?;
        }
        Ok(k as i64)
    })
}

/// Sends up to `n` messages in one crossing: message i has `lens[i]` bytes, back to
/// back in `data`, and (when `hdrs` is not null) the user header at
/// `hdrs + i * header_size`. It stops before the first message that fails or that
/// reaches fewer than `min_recipients` subscribers (`u64::MAX`: every subscriber of
/// the service, attached or not yet), and returns how many were sent; when the very
/// first fails for another reason than a full receiver, the negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_send_batch(
    h: *mut PublisherH,
    data: *const u8,
    lens: *const u64,
    n: usize,
    hdrs: *const u8,
    min_recipients: u64,
) -> i64 {
    on_hot(h, |p| {
        if n > 0 && lens.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let mut off = 0usize;
        for i in 0..n {
            let len = *lens.add(i) as usize;
            let hdr = if hdrs.is_null() { hdrs } else { hdrs.add(i * p.header) };
            let need = if min_recipients == u64::MAX {
                p.service.dynamic_config().number_of_subscribers() as u64
            } else {
                min_recipients
            };
            match p.send_one(data.add(off), len, hdr) {
                Ok(k) if k as u64 >= need => off += len,
                Ok(_) => return Ok(i as i64),
                Err(c) if i == 0 && c != IOX_E_WOULD_BLOCK => return Err(c),
                Err(_) => return Ok(i as i64),
            }
        }
        Ok(n as i64)
    })
}

/// Connects to new subscribers now (delivers history to late joiners).
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_update(h: *mut PublisherH) -> i32 {
    on(h, |p| p.publisher.update_connections().map_err(Fail::from))
}
