//! Bounds on what a service or port may ask of the machine, checked before
//! iceoryx2 creates anything.
//!
//! iceoryx2 sizes everything up front from a service's settings: a publisher's
//! data segment holds every sample that can be in flight at once, and its
//! bookkeeping grows with the same count. Huge settings therefore make the crate
//! map, zero and track tens of gigabytes (or overflow and panic). The estimates
//! below follow the crate's layout (iceoryx2 0.10.0); the coefficients were read
//! from its source and checked against the sizes it really creates.

/// Largest value of any count setting; beyond it the crate's index types and
/// size computations are no longer safe, whatever the machine holds.
pub const MAX_COUNT: u64 = 1 << 20;

/// Largest payload alignment: a `#[repr(align(N))]` Rust type cannot ask for more.
pub const MAX_ALIGNMENT: u64 = 1 << 29;

/// Segments a resizable data segment may grow to (`SegmentId` is a u8); a
/// publisher keeps a reference counter per sample per segment, and every
/// connection a used-chunk flag per sample per segment.
const SEGMENTS: u128 = 256;

/// A service (with every port it admits) or a port may use at most this share of
/// what /dev/shm and RAM can hold at the moment, leaving room for the rest of
/// the machine: other services, other processes, the samples' own growth.
const BUDGET_SHARE: u128 = 4;

// ---------------------------------------------------------------------------
// machine
// ---------------------------------------------------------------------------

/// What the machine can hold now: free space in /dev/shm and MemAvailable, in bytes.
fn machine() -> (Option<u128>, Option<u128>) {
    let shm = {
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        let path = b"/dev/shm\0";
        if unsafe { libc::statvfs(path.as_ptr() as *const libc::c_char, &mut s) } == 0 && s.f_blocks > 0 {
            Some(s.f_bavail as u128 * s.f_frsize as u128)
        } else {
            None
        }
    };
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u128>().ok())
            .map(|kb| kb * 1024)
    });
    (shm, mem)
}

/// The bytes one service (or one port) may need, and how that was derived.
pub fn budget() -> (u128, String) {
    match machine() {
        (Some(s), Some(m)) => (
            s.min(m) / BUDGET_SHARE,
            format!("a quarter of what /dev/shm ({}) and RAM ({}) can hold now", human(s), human(m)),
        ),
        (Some(s), None) => (s / BUDGET_SHARE, format!("a quarter of the free space of /dev/shm ({})", human(s))),
        (None, Some(m)) => (m / BUDGET_SHARE, format!("a quarter of the available RAM ({})", human(m))),
        (None, None) => (u128::MAX, String::new()),
    }
}

pub fn human(b: u128) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if b >= 1 << 60 {
        return "more than an exabyte".into();
    }
    format!("{v:.1} {}", U[i])
}

// ---------------------------------------------------------------------------
// publish-subscribe
// ---------------------------------------------------------------------------

fn align_up(v: u128, a: u128) -> u128 {
    v.div_ceil(a.max(1)) * a.max(1)
}

/// The settings that size a publish-subscribe service and its ports. All values
/// are the effective ones (explicit or the crate's default).
#[derive(Clone, Copy)]
pub struct PubSubShape {
    pub publishers: u128,
    pub subscribers: u128,
    pub nodes: u128,
    pub buffer: u128,
    pub borrowed: u128,
    pub history: u128,
    /// Samples a publisher may hold loaned (its MaxLoans, or the default).
    pub loans: u128,
    /// Bytes of one payload element and its alignment.
    pub size: u128,
    pub alignment: u128,
    pub header_size: u128,
    /// Payload elements of the first data segment's samples.
    pub elements: u128,
}

impl PubSubShape {
    /// Bytes of one sample: iceoryx2's header, the user header and the payload,
    /// each aligned (`MessageTypeDetails::chunk_layout`).
    pub fn chunk(&self) -> u128 {
        let hdr = std::mem::size_of::<iceoryx2::service::header::publish_subscribe::Header>() as u128;
        let (uh, uh_align) = if self.header_size == 0 { (0, 1) } else { (self.header_size, 8) };
        let all_headers = align_up(align_up(hdr, uh_align) + uh, self.alignment);
        let max_align = self.alignment.max(uh_align).max(8);
        align_up(all_headers + align_up(self.size, self.alignment) * self.elements.max(1), max_align)
    }

    /// Samples in a publisher's data segment
    /// (`StaticConfig::required_amount_of_samples_per_data_segment`).
    pub fn samples(&self) -> u128 {
        self.subscribers * (self.buffer + self.borrowed) + self.history + self.loans
    }

    /// One publisher-subscriber connection (shared memory, written in full when
    /// it is made): used-chunk flags per sample and segment, and the queues.
    pub fn connection(&self) -> u128 {
        self.samples() * SEGMENTS + 8 * (self.buffer + self.borrowed) + 8448
    }

    /// A publisher's first data segment: the samples and 8 bytes of the pool
    /// allocator's bookkeeping for each.
    pub fn data_segment(&self) -> u128 {
        self.samples() * (self.chunk() + 8) + self.alignment.max(8)
    }

    /// One publisher: its data segment, its reference counters, its history and
    /// its connections to every subscriber the service admits.
    pub fn publisher(&self) -> u128 {
        let s = self.samples();
        self.data_segment() + s * SEGMENTS * 8 + self.history * 16 + self.subscribers * self.connection() + 65536
    }

    /// One subscriber: its bookkeeping per publisher slot and borrowed sample
    /// (measured: about 3.4 KiB per borrowed sample once a publisher connects).
    pub fn subscriber(&self) -> u128 {
        self.publishers * (4096 + self.borrowed * SEGMENTS * 16) + 65536
    }

    /// The service's dynamic configuration (port and node lists).
    pub fn dynamic(&self) -> u128 {
        256 * (self.publishers + self.subscribers) + 64 * self.nodes + 4096
    }

    /// Everything the service needs once every port it admits exists.
    pub fn service(&self) -> u128 {
        self.dynamic() + self.publishers * self.publisher() + self.subscribers * self.subscriber()
    }
}

/// One setting of a shape, for naming the setting to lower.
#[derive(Clone, Copy, PartialEq)]
pub enum Knob {
    Publishers,
    Subscribers,
    Nodes,
    Buffer,
    Borrowed,
    History,
    Loans,
    Elements,
}

impl Knob {
    fn name(self) -> &'static str {
        match self {
            Knob::Publishers => "MaxPublishers",
            Knob::Subscribers => "MaxSubscribers",
            Knob::Nodes => "MaxNodes",
            Knob::Buffer => "BufferSize",
            Knob::Borrowed => "MaxBorrowed",
            Knob::History => "History",
            Knob::Loans => "MaxLoans",
            Knob::Elements => "InitialMessageSize",
        }
    }

    fn get(self, s: &PubSubShape) -> u128 {
        match self {
            Knob::Publishers => s.publishers,
            Knob::Subscribers => s.subscribers,
            Knob::Nodes => s.nodes,
            Knob::Buffer => s.buffer,
            Knob::Borrowed => s.borrowed,
            Knob::History => s.history,
            Knob::Loans => s.loans,
            Knob::Elements => s.elements,
        }
    }

    fn set(self, s: &mut PubSubShape, v: u128) {
        match self {
            Knob::Publishers => s.publishers = v,
            Knob::Subscribers => s.subscribers = v,
            Knob::Nodes => s.nodes = v,
            Knob::Buffer => s.buffer = v,
            Knob::Borrowed => s.borrowed = v,
            Knob::History => s.history = v,
            Knob::Loans => s.loans = v,
            Knob::Elements => s.elements = v,
        }
    }

    /// The smallest meaningful value (a count of 0 is refused elsewhere).
    fn least(self) -> u128 {
        match self {
            Knob::History | Knob::Loans => 0,
            _ => 1,
        }
    }
}

/// Largest value of `knob` for which `need(shape) <= budget`, the others fixed;
/// None when even its least value does not fit.
fn largest_fit(shape: &PubSubShape, knob: Knob, budget: u128, need: fn(&PubSubShape) -> u128) -> Option<u128> {
    let mut s = *shape;
    let (mut lo, mut hi) = (knob.least(), knob.get(shape));
    knob.set(&mut s, lo);
    if need(&s) > budget {
        return None;
    }
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        knob.set(&mut s, mid);
        if need(&s) <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// Checks `need(shape)` against the machine. On refusal, the detail names the
/// setting among `knobs` that is furthest over what would fit, and its bound.
pub fn check_fit(
    what: &str,
    shape: &PubSubShape,
    knobs: &[Knob],
    need: fn(&PubSubShape) -> u128,
    elem_bytes: u128,
) -> Result<(), String> {
    let needed = need(shape);
    let (budget, whence) = budget();
    if needed <= budget {
        return Ok(());
    }
    // Each setting that alone can make it fit, with the largest value that does.
    let mut fixes = Vec::new();
    for &k in knobs {
        if let Some(f) = largest_fit(shape, k, budget, need) {
            if f < k.get(shape) {
                let shown = if k == Knob::Elements { f * elem_bytes.max(1) } else { f };
                fixes.push(format!("{} at most {shown}", k.name()));
            }
        }
    }
    Err(format!(
        "{what} needs about {} of shared memory and RAM, more than {} ({whence}); {}",
        human(needed),
        human(budget),
        bounds_text(&fixes)
    ))
}

fn bounds_text(fixes: &[String]) -> String {
    if fixes.is_empty() {
        "no single setting fits: lower several".into()
    } else {
        format!("with the other settings as they are it fits with {}", fixes.join(" or "))
    }
}

// ---------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------

/// Bytes of one listener's event-id set: a 64-bit counter per id
/// (`RelocatableCountingBitSet`), which every wait scans. None on overflow.
pub fn listener_bytes(max_event_id: u64) -> Option<u128> {
    (max_event_id as u128 + 1).checked_mul(8).map(|b| b + 4096)
}

/// Everything an event service needs once every port it admits exists: its
/// dynamic configuration, each listener's id set, each notifier's table of
/// listener connections (about 1.2 KiB a slot).
pub fn event_service(listeners: u64, notifiers: u64, nodes: u64, max_event_id: u64) -> Option<u128> {
    let (l, n, d) = (listeners as u128, notifiers as u128, nodes as u128);
    let per_listener = listener_bytes(max_event_id)?;
    Some(128 * (l + n) + 64 * d + 4096 + l * per_listener + n * notifier_bytes(listeners))
}

/// Heap of one notifier: a connection slot per listener the service admits.
pub fn notifier_bytes(listeners: u64) -> u128 {
    listeners as u128 * 1280 + 65536
}

/// Checks an event service's need against the machine; the detail names the
/// setting to lower and its bound.
/// `set` says which of listeners, notifiers and max_event_id were given explicitly.
pub fn check_event(
    listeners: u64,
    notifiers: u64,
    nodes: u64,
    max_event_id: u64,
    set: [bool; 3],
) -> Result<(), (bool, String)> {
    let Some(needed) = event_service(listeners, notifiers, nodes, max_event_id) else {
        return Err((false, format!("MaxEventID {max_event_id} overflows the size of a listener's event-id set")));
    };
    let (budget, whence) = budget();
    if needed <= budget {
        return Ok(());
    }
    let fits = |l: u64, n: u64, id: u64| event_service(l, n, nodes, id).is_some_and(|v| v <= budget);
    // The largest value in least..=cur that fits, if any.
    let largest = |ok: &dyn Fn(u64) -> bool, least: u64, cur: u64| -> Option<u64> {
        if !ok(least) {
            return None;
        }
        let (mut lo, mut hi) = (least, cur);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if ok(mid) {
                lo = mid
            } else {
                hi = mid - 1
            }
        }
        Some(lo)
    };
    let mut fixes = Vec::new();
    for (i, name, cur, fit) in [
        (0, "MaxListeners", listeners, largest(&|l| fits(l, notifiers, max_event_id), 1, listeners)),
        (1, "MaxNotifiers", notifiers, largest(&|n| fits(listeners, n, max_event_id), 1, notifiers)),
        (2, "MaxEventID", max_event_id, largest(&|id| fits(listeners, notifiers, id), 0, max_event_id)),
    ] {
        if let Some(f) = fit {
            if set[i] && f < cur {
                fixes.push(format!("{name} at most {f}"));
            }
        }
    }
    Err((
        true,
        format!(
            "the event service needs about {} of shared memory and RAM (8 bytes per event id for each listener), more than {} ({whence}); {}",
            human(needed),
            human(budget),
            bounds_text(&fixes)
        ),
    ))
}

/// Checks that `bytes` fit the machine now: for one port of an existing service.
pub fn check_bytes(what: &str, bytes: u128) -> Result<(), String> {
    let (budget, whence) = budget();
    if bytes <= budget {
        return Ok(());
    }
    Err(format!("{what} needs about {}, more than {} ({whence})", human(bytes), human(budget)))
}

// ---------------------------------------------------------------------------
// paths
// ---------------------------------------------------------------------------

/// Longest unix socket path, without its terminating NUL
/// (`iceoryx2_bb_posix::config::UNIX_DOMAIN_SOCKET_PATH_LENGTH` is 108 with it).
pub const SOCKET_PATH_MAX: usize = 107;
/// A listener's socket is `<root><prefix><listener id: u128 decimal, up to 39 digits><suffix>`.
pub const LISTENER_ID_DIGITS: usize = 39;

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> PubSubShape {
        // iceoryx2's defaults, 4 KiB byte messages
        PubSubShape {
            publishers: 2,
            subscribers: 8,
            nodes: 20,
            buffer: 2,
            borrowed: 2,
            history: 0,
            loans: 2,
            size: 1,
            alignment: 1,
            header_size: 0,
            elements: 4096,
        }
    }

    // Sizes iceoryx2 0.10.0 really creates for the defaults (measured: data
    // segment 141175 bytes = 34 samples of 4144 + 8 + 7, connection 17098 bytes).
    #[test]
    fn the_estimate_follows_the_crates_layout() {
        let s = defaults();
        assert_eq!(s.samples(), 34);
        assert_eq!(s.chunk(), 4144);
        assert!((141175..141175 + 64).contains(&s.data_segment()), "data segment {}", s.data_segment());
        let c = s.connection();
        assert!((17098..17098 + 128).contains(&c), "connection {c}");
        // BufferSize 16384: 33698490 bytes.
        let c = PubSubShape { buffer: 16384, ..s }.connection();
        assert!((33698490..33698490 + 1024).contains(&c), "connection {c}");
    }

    #[test]
    fn the_largest_fit_is_the_boundary() {
        let s = PubSubShape { buffer: 1 << 20, ..defaults() };
        let budget = 1u128 << 30;
        let f = largest_fit(&s, Knob::Buffer, budget, PubSubShape::service).unwrap();
        let at = PubSubShape { buffer: f, ..s };
        let over = PubSubShape { buffer: f + 1, ..s };
        assert!(at.service() <= budget && over.service() > budget);
        assert!(largest_fit(&PubSubShape { subscribers: 1 << 40, ..s }, Knob::Buffer, budget, PubSubShape::service).is_none());
    }

    #[test]
    fn event_sizes_overflow_cleanly() {
        assert!(listener_bytes(u64::MAX).is_some()); // u128 arithmetic
        assert!(event_service(16, 16, 36, u64::MAX).is_some());
        assert!(matches!(check_event(16, 16, 36, 1 << 40, [false, false, true]), Err((true, m)) if m.contains("MaxEventID")));
    }
}
