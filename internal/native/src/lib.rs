//! iox_native: a small C ABI over the `iceoryx2` crate, shaped for Go's purego.
//!
//! Rules every export follows:
//! * no callbacks; results go through out-parameters; the return value is a
//!   status code (`IOX_OK` = 0), readable with `iox_status_text`;
//! * cold calls (node, service and port creation) also write the crate's own
//!   error description into a caller-provided buffer;
//! * one crossing per message on the hot paths (copy-send, batched receive);
//! * no Rust panic unwinds across the boundary: every body runs inside
//!   `catch_unwind` and a panic becomes `IOX_E_PANIC`;
//! * every handle has exactly one drop function.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::port::{BackpressureAction, LoanError, SendError};
use iceoryx2::prelude::*;
use iceoryx2::sample::Sample;
use iceoryx2::sample_mut::SampleMut;
use iceoryx2::service::marker::{CustomHeaderMarker, CustomPayloadMarker};
use iceoryx2::service::port_factory::{event as event_factory, publish_subscribe as ps_factory};
use iceoryx2::service::static_config::message_type_details::{TypeDetail, TypeVariant};

mod bounds;
mod reqres;

/// Version of this C ABI. The Go loader refuses a library with another value.
pub const ABI_VERSION: u32 = 6;

/// The iceoryx2 release this library is built on (pinned in Cargo.toml).
pub const ICEORYX2_VERSION: &str = "0.10.0";

type Svc = ipc_threadsafe::Service;
type Bytes = [CustomPayloadMarker];
type Hdr = CustomHeaderMarker;

// ---------------------------------------------------------------------------
// status codes
// ---------------------------------------------------------------------------

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
    let text = STATUS_TEXT
        .get(code as usize)
        .copied()
        .unwrap_or("unknown status");
    write_text(text, buf, cap)
}

fn write_text(text: &str, buf: *mut u8, cap: usize) -> usize {
    if !buf.is_null() && cap > 0 {
        let n = text.len().min(cap);
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buf, n) };
    }
    text.len()
}

/// Classifies any of the crate's cold-path error enums by the name of its variant.
fn classify(debug: &str) -> i32 {
    let has = |s: &str| debug.contains(s);
    if has("VersionMismatch") {
        IOX_E_VERSION_MISMATCH
    } else if has("DoesNotExist") {
        IOX_E_NOT_FOUND
    } else if has("AlreadyExists") {
        IOX_E_ALREADY_EXISTS
    } else if has("IncompatibleTypes") {
        IOX_E_INCOMPATIBLE_TYPE
    } else if has("Incompatible") || has("DoesNotSupport") || has("MustBeLarger") {
        IOX_E_INCOMPATIBLE
    } else if has("Exceeds") {
        IOX_E_LIMIT_REACHED
    } else if has("Permission") {
        IOX_E_PERMISSION
    } else if has("InFlux") || has("BeingCreated") || has("HangsInCreation") || has("MarkedForDestruction") {
        IOX_E_BUSY
    } else if has("OutOfMemory") || has("UnableToCreateDataSegment") {
        IOX_E_OUT_OF_MEMORY
    } else {
        IOX_E_INTERNAL
    }
}

fn fail<E: std::fmt::Debug>(e: E, errbuf: *mut u8, errcap: usize) -> i32 {
    let text = format!("{e:?}");
    write_text(&text, errbuf, errcap);
    classify(&text)
}

/// Runs `f`, turning a panic into `IOX_E_PANIC`.
fn guard<F: FnOnce() -> i32>(f: F) -> i32 {
    bounds::install_panic_hook();
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(IOX_E_PANIC)
}

/// Cold-path form of `guard`: a panic also writes its one-line description into
/// the caller's error buffer.
fn guard_err<F: FnOnce() -> i32>(errbuf: *mut u8, errcap: usize, f: F) -> i32 {
    bounds::install_panic_hook();
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        write_text(&format!("panic inside the native library: {}", bounds::take_last_panic()), errbuf, errcap);
        IOX_E_PANIC
    })
}

/// Writes `msg` into the error buffer and returns `code`.
fn refuse(code: i32, msg: &str, errbuf: *mut u8, errcap: usize) -> i32 {
    write_text(msg, errbuf, errcap);
    code
}

/// Hot-path form: `f` yields a count (or handle address) on success and a status on
/// failure; the export returns the value, or the negated status.
fn guard_value<F: FnOnce() -> Result<i64, i32>>(f: F) -> i64 {
    bounds::install_panic_hook();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(code)) => -(code as i64),
        Err(_) => -(IOX_E_PANIC as i64),
    }
}

unsafe fn text_arg<'a>(ptr: *const u8, len: usize) -> Option<&'a str> {
    if len == 0 {
        return Some("");
    }
    if ptr.is_null() {
        return None;
    }
    std::str::from_utf8(std::slice::from_raw_parts(ptr, len)).ok()
}

unsafe fn handle<'a, T>(h: *mut T) -> Option<&'a T> {
    h.as_ref()
}

unsafe fn put<T>(out: *mut T, v: T) {
    if !out.is_null() {
        out.write(v);
    }
}

fn into_handle<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

unsafe fn drop_handle<T>(h: *mut T) {
    if !h.is_null() {
        drop(Box::from_raw(h));
    }
}

// ---------------------------------------------------------------------------
// library
// ---------------------------------------------------------------------------

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
        let Some(bytes) = (if len == 0 { Some(&[][..]) } else if ptr.is_null() { None } else { Some(std::slice::from_raw_parts(ptr, len)) }) else {
            return IOX_E_INVALID_ARGUMENT;
        };
        let Ok(s) = std::str::from_utf8(bytes) else { return IOX_E_INVALID_NAME };
        match ServiceName::new(s) {
            Ok(_) => IOX_OK,
            Err(_) => IOX_E_INVALID_NAME,
        }
    })
}

// ---------------------------------------------------------------------------
// node
// ---------------------------------------------------------------------------

pub struct NodeH {
    node: Node<Svc>,
}

/// Creates a node with signal handling disabled. `prefix` and `root` (both may be
/// empty) select an isolated iceoryx2 configuration; `root` must end with '/'.
#[no_mangle]
pub unsafe extern "C" fn iox_node_create(
    name: *const u8,
    name_len: usize,
    prefix: *const u8,
    prefix_len: usize,
    root: *const u8,
    root_len: usize,
    out: *mut *mut NodeH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard_err(errbuf, errcap, || {
        let (Some(name), Some(prefix), Some(root)) = (
            text_arg(name, name_len),
            text_arg(prefix, prefix_len),
            text_arg(root, root_len),
        ) else {
            return IOX_E_INVALID_ARGUMENT;
        };
        if out.is_null() {
            return IOX_E_INVALID_ARGUMENT;
        }
        let mut config = Config::default();
        // A listener's socket is <root><prefix><id><suffix>: keep it within the
        // unix socket path limit, or creating a listener fails later.
        let root_len = if root.is_empty() { config.global.root_path().len() } else { root.len() };
        let prefix_len = if prefix.is_empty() { config.global.prefix.len() } else { prefix.len() };
        let suffix_len = config.global.service.event_connection_suffix.len();
        if root_len + prefix_len + bounds::LISTENER_ID_DIGITS + suffix_len > bounds::SOCKET_PATH_MAX {
            let room = bounds::SOCKET_PATH_MAX - bounds::LISTENER_ID_DIGITS - suffix_len;
            let msg = format!(
                "isolation root ({root_len} bytes) and prefix ({prefix_len} bytes) together may have at most {room} bytes: a listener's socket path (root + prefix + {} digit id + {:?}) must fit in {} bytes",
                bounds::LISTENER_ID_DIGITS, config.global.service.event_connection_suffix.to_string(), bounds::SOCKET_PATH_MAX + 1
            );
            return refuse(IOX_E_INVALID_ARGUMENT, &msg, errbuf, errcap);
        }
        if !prefix.is_empty() {
            match FileName::new(prefix.as_bytes()) {
                Ok(p) => config.global.prefix = p,
                Err(e) => {
                    write_text(&format!("invalid config prefix: {e:?}"), errbuf, errcap);
                    return IOX_E_INVALID_NAME;
                }
            }
        }
        if !root.is_empty() {
            match Path::new(root.as_bytes()) {
                Ok(p) => config.global.set_root_path(&p),
                Err(e) => {
                    write_text(&format!("invalid root path: {e:?}"), errbuf, errcap);
                    return IOX_E_INVALID_NAME;
                }
            }
        }
        let mut builder = NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .config(&config);
        if !name.is_empty() {
            match NodeName::new(name) {
                Ok(n) => builder = builder.name(&n),
                Err(e) => {
                    write_text(&format!("invalid node name: {e:?}"), errbuf, errcap);
                    return IOX_E_INVALID_NAME;
                }
            }
        }
        match builder.create::<Svc>() {
            Ok(node) => {
                put(out, into_handle(NodeH { node }));
                IOX_OK
            }
            Err(e) => fail(e, errbuf, errcap),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn iox_node_drop(h: *mut NodeH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

/// Removes the service `name` (`pattern` 0 publish-subscribe, 1 event, 2
/// request-response) when a process died while it created or removed it, so
/// that it can be neither opened nor created. It refuses with `IOX_E_BUSY`
/// while a live node of the namespace holds the service. Sets `removed` to 1
/// when it removed something.
#[no_mangle]
pub unsafe extern "C" fn iox_service_remove_stale(
    h: *mut NodeH,
    name: *const u8,
    name_len: usize,
    pattern: u32,
    removed: *mut u64,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard(|| {
        let Some(n) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let name = match service_name(name, name_len, errbuf, errcap) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let pattern = match pattern {
            0 => iceoryx2::service::messaging_pattern::MessagingPattern::PublishSubscribe,
            1 => iceoryx2::service::messaging_pattern::MessagingPattern::Event,
            2 => iceoryx2::service::messaging_pattern::MessagingPattern::RequestResponse,
            _ => return IOX_E_INVALID_ARGUMENT,
        };
        let hash = iceoryx2::service::service_hash::ServiceHash::new::<
            <Svc as iceoryx2::service::Service>::ServiceNameHasher,
        >(&name, pattern);
        let config = n.node.config();
        let mut held = false;
        let listed = Node::<Svc>::list(config, |state| {
            if let NodeState::Alive(view) = state {
                if iceoryx2::testing::does_service_tag_exist::<Svc>(&hash, config, iceoryx2::node::NodeView::id(&view)).unwrap_or(true) {
                    held = true;
                    return CallbackProgression::Stop;
                }
            }
            CallbackProgression::Continue
        });
        if let Err(e) = listed {
            return fail(e, errbuf, errcap);
        }
        if held {
            write_text("a live node holds the service", errbuf, errcap);
            return IOX_E_BUSY;
        }
        match n.node.force_remove_service(&name, pattern) {
            Ok(r) => {
                put(removed, r as u64);
                IOX_OK
            }
            Err(e) => fail(e, errbuf, errcap),
        }
    })
}

/// Removes the resources of dead nodes that share this node's configuration.
#[no_mangle]
pub unsafe extern "C" fn iox_node_cleanup_dead(h: *mut NodeH, cleaned: *mut u64, failed: *mut u64) -> i32 {
    guard(|| {
        let Some(n) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let state = n.node.try_cleanup_dead_nodes();
        put(cleaned, state.cleanups as u64);
        put(failed, state.failed_cleanups as u64);
        IOX_OK
    })
}

/// Writes the node's unique id (128 bits, low then high).
#[no_mangle]
pub unsafe extern "C" fn iox_node_id(h: *mut NodeH, lo: *mut u64, hi: *mut u64) -> i32 {
    guard(|| {
        let Some(n) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let v = n.node.id().value();
        put(lo, v as u64);
        put(hi, (v >> 64) as u64);
        IOX_OK
    })
}

// ---------------------------------------------------------------------------
// publish-subscribe services
// ---------------------------------------------------------------------------

pub const OPEN: u32 = 0;
pub const CREATE: u32 = 1;
pub const OPEN_OR_CREATE: u32 = 2;

pub const PS_SET_MAX_PUBLISHERS: u64 = 1 << 0;
pub const PS_SET_MAX_SUBSCRIBERS: u64 = 1 << 1;
pub const PS_SET_MAX_NODES: u64 = 1 << 2;
pub const PS_SET_BUFFER_SIZE: u64 = 1 << 3;
pub const PS_SET_HISTORY_SIZE: u64 = 1 << 4;
pub const PS_SET_SAFE_OVERFLOW: u64 = 1 << 5;
pub const PS_SET_MAX_BORROWED: u64 = 1 << 6;

/// Publish-subscribe settings; a field counts only when its bit is in `set`.
/// `variant` 0 = dynamic slice of `size`-byte elements, 1 = one fixed-size value.
#[repr(C)]
pub struct PubSubOpts {
    pub set: u64,
    pub max_publishers: u64,
    pub max_subscribers: u64,
    pub max_nodes: u64,
    pub buffer_size: u64,
    pub history_size: u64,
    pub safe_overflow: u64,
    pub max_borrowed: u64,
    pub variant: u64,
    pub size: u64,
    pub alignment: u64,
    /// Size in bytes of a user header carried with every message (0 = none, the
    /// plain "()" header other iceoryx2 peers use). Aligned to 8; named `iox::Header`.
    pub header_size: u64,
}

/// The settings a publish-subscribe service actually has.
#[repr(C)]
pub struct PubSubConfig {
    pub max_publishers: u64,
    pub max_subscribers: u64,
    pub max_nodes: u64,
    pub buffer_size: u64,
    pub history_size: u64,
    pub safe_overflow: u64,
    pub max_borrowed: u64,
    pub variant: u64,
    pub size: u64,
    pub alignment: u64,
    pub header_size: u64,
}

type PubSubFactory = ps_factory::PortFactory<Svc, Bytes, Hdr>;

pub struct PubSubH {
    factory: Arc<PubSubFactory>,
    size: usize,
    dynamic: bool,
    header: usize,
}

/// Type name of the user header iox's own channel adapters put on messages.
const HEADER_TYPE: &str = "iox::Header";

fn service_name(ptr: *const u8, len: usize, errbuf: *mut u8, errcap: usize) -> Result<ServiceName, i32> {
    let Some(s) = (unsafe { text_arg(ptr, len) }) else {
        write_text("service name is not valid UTF-8", errbuf, errcap);
        return Err(IOX_E_INVALID_NAME);
    };
    ServiceName::new(s).map_err(|e| {
        write_text(&format!("invalid service name {s:?}: {e:?}"), errbuf, errcap);
        IOX_E_INVALID_NAME
    })
}

/// Opens, creates or opens-or-creates a publish-subscribe service whose payload
/// has the given type details (Rust `[u8]` is dynamic "u8" 1/1).
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_open(
    node: *mut NodeH,
    name: *const u8,
    name_len: usize,
    mode: u32,
    opts: *const PubSubOpts,
    type_name: *const u8,
    type_name_len: usize,
    out: *mut *mut PubSubH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard_err(errbuf, errcap, || {
        let (Some(n), Some(o)) = (handle(node), opts.as_ref()) else {
            return IOX_E_INVALID_ARGUMENT;
        };
        if out.is_null() {
            return IOX_E_INVALID_ARGUMENT;
        }
        let name = match service_name(name, name_len, errbuf, errcap) {
            Ok(n) => n,
            Err(c) => return c,
        };
        let Some(tname) = text_arg(type_name, type_name_len) else {
            return IOX_E_INVALID_ARGUMENT;
        };
        let dynamic = o.variant == 0;
        if o.size == 0 && !dynamic || o.alignment == 0 || !o.alignment.is_power_of_two() {
            write_text("type size and alignment must be positive, alignment a power of two", errbuf, errcap);
            return IOX_E_INVALID_ARGUMENT;
        }
        if let Err(msg) = pubsub_bounds(n, o, mode) {
            return refuse(msg.0, &msg.1, errbuf, errcap);
        }
        let variant = if dynamic { TypeVariant::Dynamic } else { TypeVariant::FixedSize };
        let payload = match TypeDetail::__internal_new_from_parts(variant, tname, o.size as usize, o.alignment as usize) {
            Ok(t) => t,
            Err(e) => {
                write_text(&format!("invalid type name {tname:?}: {e:?}"), errbuf, errcap);
                return IOX_E_INVALID_ARGUMENT;
            }
        };
        let header = if o.header_size == 0 {
            TypeDetail::__internal_new_from_parts(TypeVariant::FixedSize, "()", 0, 1)
        } else {
            TypeDetail::__internal_new_from_parts(TypeVariant::FixedSize, HEADER_TYPE, o.header_size as usize, 8)
        };
        let header = match header {
            Ok(t) => t,
            Err(_) => return IOX_E_INTERNAL,
        };
        let mut b = n
            .node
            .service_builder(&name)
            .publish_subscribe::<Bytes>()
            .user_header::<Hdr>();
        b = b.__internal_set_user_header_type_details(&header);
        b = b.__internal_set_payload_type_details(&payload);
        let v = |bit: u64| o.set & bit != 0;
        if v(PS_SET_MAX_PUBLISHERS) {
            b = b.max_publishers(o.max_publishers as usize);
        }
        if v(PS_SET_MAX_SUBSCRIBERS) {
            b = b.max_subscribers(o.max_subscribers as usize);
        }
        if v(PS_SET_MAX_NODES) {
            b = b.max_nodes(o.max_nodes as usize);
        }
        if v(PS_SET_BUFFER_SIZE) {
            b = b.subscriber_max_buffer_size(o.buffer_size as usize);
        }
        if v(PS_SET_HISTORY_SIZE) {
            b = b.history_size(o.history_size as usize);
        }
        if v(PS_SET_SAFE_OVERFLOW) {
            b = b.enable_safe_overflow(o.safe_overflow != 0);
        }
        if v(PS_SET_MAX_BORROWED) {
            b = b.subscriber_max_borrowed_samples(o.max_borrowed as usize);
        }
        let res = match mode {
            OPEN => b.open().map_err(|e| fail(e, errbuf, errcap)),
            CREATE => b.create().map_err(|e| fail(e, errbuf, errcap)),
            OPEN_OR_CREATE => b.open_or_create().map_err(|e| fail(e, errbuf, errcap)),
            _ => Err(IOX_E_INVALID_ARGUMENT),
        };
        match res {
            Ok(factory) => {
                let header = factory.static_config().message_type_details().user_header.size();
                put(out, into_handle(PubSubH { factory: Arc::new(factory), size: o.size.max(1) as usize, dynamic, header }));
                IOX_OK
            }
            Err(c) => c,
        }
    })
}

/// Checks a publish-subscribe request before iceoryx2 sees it: counts of at
/// least 1 where the crate needs one (it would panic on 0), sizes that do not
/// overflow, and, when the service may be created, that the memory it needs
/// once every port it admits exists fits the machine.
fn pubsub_bounds(n: &NodeH, o: &PubSubOpts, mode: u32) -> Result<(), (i32, String)> {
    let bad = |m: String| Err((IOX_E_INVALID_ARGUMENT, m));
    let set = |bit: u64| o.set & bit != 0;
    for (bit, name, v, least) in [
        (PS_SET_MAX_PUBLISHERS, "MaxPublishers", o.max_publishers, 1),
        (PS_SET_MAX_SUBSCRIBERS, "MaxSubscribers", o.max_subscribers, 1),
        (PS_SET_MAX_NODES, "MaxNodes", o.max_nodes, 1),
        (PS_SET_BUFFER_SIZE, "BufferSize", o.buffer_size, 1),
        (PS_SET_MAX_BORROWED, "MaxBorrowed", o.max_borrowed, 1),
        (PS_SET_HISTORY_SIZE, "History", o.history_size, 0),
    ] {
        if set(bit) && (v < least || v > bounds::MAX_COUNT) {
            return bad(format!("{name} {v} is outside {least}..={}", bounds::MAX_COUNT));
        }
    }
    if o.alignment > bounds::MAX_ALIGNMENT {
        return bad(format!("payload alignment {} is over {}", o.alignment, bounds::MAX_ALIGNMENT));
    }
    if o.size > u32::MAX as u64 || o.header_size > u32::MAX as u64 {
        return bad(format!("payload element size {} or header size {} is over {}", o.size, o.header_size, u32::MAX));
    }
    if mode == OPEN {
        return Ok(());
    }
    let d = &n.node.config().defaults.publish_subscribe;
    let pick = |bit: u64, v: u64, default: usize| if set(bit) { v as u128 } else { default as u128 };
    let shape = bounds::PubSubShape {
        publishers: pick(PS_SET_MAX_PUBLISHERS, o.max_publishers, d.max_publishers).max(1),
        subscribers: pick(PS_SET_MAX_SUBSCRIBERS, o.max_subscribers, d.max_subscribers).max(1),
        nodes: pick(PS_SET_MAX_NODES, o.max_nodes, d.max_nodes).max(1),
        buffer: pick(PS_SET_BUFFER_SIZE, o.buffer_size, d.subscriber_max_buffer_size).max(1),
        borrowed: pick(PS_SET_MAX_BORROWED, o.max_borrowed, d.subscriber_max_borrowed_samples).max(1),
        history: pick(PS_SET_HISTORY_SIZE, o.history_size, d.publisher_history_size),
        loans: d.publisher_max_loaned_samples as u128,
        size: (o.size as u128).max(1),
        alignment: o.alignment as u128,
        header_size: o.header_size as u128,
        elements: 1,
    };
    let mut knobs = Vec::new();
    for (bit, k) in [
        (PS_SET_MAX_PUBLISHERS, bounds::Knob::Publishers),
        (PS_SET_MAX_SUBSCRIBERS, bounds::Knob::Subscribers),
        (PS_SET_MAX_NODES, bounds::Knob::Nodes),
        (PS_SET_BUFFER_SIZE, bounds::Knob::Buffer),
        (PS_SET_MAX_BORROWED, bounds::Knob::Borrowed),
        (PS_SET_HISTORY_SIZE, bounds::Knob::History),
    ] {
        if set(bit) {
            knobs.push(k);
        }
    }
    bounds::check_fit("the service", &shape, &knobs, bounds::PubSubShape::service, 0)
        .map_err(|m| (IOX_E_OUT_OF_MEMORY, m))
}

#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_drop(h: *mut PubSubH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

/// Writes the number of publishers and subscribers connected to the service now.
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_counts(h: *mut PubSubH, publishers: *mut u64, subscribers: *mut u64) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let d = s.factory.dynamic_config();
        put(publishers, d.number_of_publishers() as u64);
        put(subscribers, d.number_of_subscribers() as u64);
        IOX_OK
    })
}

/// Writes the service's stored settings.
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_config(h: *mut PubSubH, out: *mut PubSubConfig) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let c = s.factory.static_config();
        let p = &c.message_type_details().payload;
        put(
            out,
            PubSubConfig {
                max_publishers: c.max_publishers() as u64,
                max_subscribers: c.max_subscribers() as u64,
                max_nodes: c.max_nodes() as u64,
                buffer_size: c.subscriber_max_buffer_size() as u64,
                history_size: c.history_size() as u64,
                safe_overflow: c.has_safe_overflow() as u64,
                max_borrowed: c.subscriber_max_borrowed_samples() as u64,
                variant: if p.variant() == TypeVariant::Dynamic { 0 } else { 1 },
                size: p.size() as u64,
                alignment: p.alignment() as u64,
                header_size: c.message_type_details().user_header.size() as u64,
            },
        );
        IOX_OK
    })
}

/// Lists the ports of the service: `which` 0 = publishers, 1 = subscribers. Writes four
/// words per port (port id low, high, node id low, high) into `out`, at most `max`
/// ports, and returns how many ports exist (which may exceed `max`).
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_list(h: *mut PubSubH, which: u32, out: *mut u64, max: usize) -> i64 {
    guard_value(|| {
        let s = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        if max > 0 && out.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let mut n = 0usize;
        let mut write = |port: u128, node: u128| {
            if n < max {
                let w = out.add(4 * n);
                *w = port as u64;
                *w.add(1) = (port >> 64) as u64;
                *w.add(2) = node as u64;
                *w.add(3) = (node >> 64) as u64;
            }
            n += 1;
        };
        let d = s.factory.dynamic_config();
        if which == 0 {
            d.list_publishers(|p| {
                write(p.publisher_id.value(), p.node_id.value());
                CallbackProgression::Continue
            });
        } else {
            d.list_subscribers(|p| {
                write(p.subscriber_id.value(), p.node_id.value());
                CallbackProgression::Continue
            });
        }
        Ok(n as i64)
    })
}

/// Removes dead nodes' ports from this service; writes how many nodes were cleaned.
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_cleanup_dead(h: *mut PubSubH, cleaned: *mut u64, failed: *mut u64) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let st = s.factory.try_cleanup_dead_nodes();
        put(cleaned, st.cleanups as u64);
        put(failed, st.failed_cleanups as u64);
        IOX_OK
    })
}

// ---------------------------------------------------------------------------
// publisher
// ---------------------------------------------------------------------------

/// Full-receiver behaviour of a publisher on a service without safe overflow.
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

pub struct PublisherH {
    publisher: Publisher<Svc, Bytes, Hdr>,
    /// `BP_FAIL`: a send that misses a subscriber that was there before it fails.
    fail: bool,
    service: Arc<PubSubFactory>,
    /// Chunks whose pages are known to be backed: address → bytes populated.
    /// Chunks are reused, so after the first round a loan needs no system call.
    populated: Mutex<std::collections::HashMap<usize, usize>>,
    size: usize,
    dynamic: bool,
    header: usize,
}

/// The shape of an existing service, as the bounds see it, for a publisher with
/// `loans` loaned samples of `elements` payload elements.
fn existing_shape(
    c: &iceoryx2::service::static_config::publish_subscribe::StaticConfig,
    loans: u128,
    elements: u128,
) -> bounds::PubSubShape {
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

#[no_mangle]
pub unsafe extern "C" fn iox_publisher_create(
    svc: *mut PubSubH,
    opts: *const PublisherOpts,
    out: *mut *mut PublisherH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard_err(errbuf, errcap, || {
        let (Some(s), Some(o)) = (handle(svc), opts.as_ref()) else {
            return IOX_E_INVALID_ARGUMENT;
        };
        if out.is_null() {
            return IOX_E_INVALID_ARGUMENT;
        }
        let elems = if s.dynamic {
            (o.initial_max_len as usize).div_ceil(s.size).max(1)
        } else {
            1
        };
        let alloc = match o.allocation {
            0 => AllocationStrategy::Static,
            1 => AllocationStrategy::PowerOfTwo,
            _ => AllocationStrategy::BestFit,
        };
        if let Err((code, msg)) = publisher_bounds(s, o, elems) {
            return refuse(code, &msg, errbuf, errcap);
        }
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
        match b.create() {
            Ok(publisher) => {
                put(out, into_handle(PublisherH {
                    publisher,
                    fail: o.backpressure as u32 == BP_FAIL,
                    service: s.factory.clone(),
                    populated: Mutex::new(std::collections::HashMap::new()),
                    size: s.size,
                    dynamic: s.dynamic,
                    header: s.header,
                }));
                IOX_OK
            }
            Err(e) => fail(e, errbuf, errcap),
        }
    })
}

/// Most retries a `BP_FAIL` publisher may spin on a full receiver: beyond them
/// iceoryx2's adaptive wait sleeps inside the send call, which Go cannot cancel.
pub const MAX_SPIN: u64 = 10_000;

/// Checks a publisher request against the service it belongs to: the loans and
/// spin it asks for, and the memory its data segment, bookkeeping and
/// connections need.
fn publisher_bounds(s: &PubSubH, o: &PublisherOpts, elems: usize) -> Result<(), (i32, String)> {
    if o.max_loaned > bounds::MAX_COUNT {
        return Err((IOX_E_INVALID_ARGUMENT, format!("MaxLoans {} is over {}", o.max_loaned, bounds::MAX_COUNT)));
    }
    if o.backpressure as u32 == BP_FAIL && o.spin > MAX_SPIN {
        return Err((IOX_E_INVALID_ARGUMENT, format!("FailWhenFull spin {} is over {MAX_SPIN}", o.spin)));
    }
    let c = s.factory.static_config();
    let loans = if o.max_loaned > 0 { o.max_loaned as u128 } else { 2 };
    let shape = existing_shape(c, loans, elems as u128);
    let knobs: &[bounds::Knob] = if s.dynamic {
        &[bounds::Knob::Elements, bounds::Knob::Loans]
    } else {
        &[bounds::Knob::Loans]
    };
    bounds::check_fit("the publisher", &shape, knobs, bounds::PubSubShape::publisher, s.size as u128)
        .map_err(|m| (IOX_E_OUT_OF_MEMORY, m))
}

#[no_mangle]
pub unsafe extern "C" fn iox_publisher_drop(h: *mut PublisherH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

fn loan_error(e: LoanError) -> i32 {
    match e {
        LoanError::ExceedsMaxLoanSize => IOX_E_TOO_LARGE,
        LoanError::ExceedsMaxLoans => IOX_E_TOO_MANY_LOANS,
        LoanError::OutOfMemory => IOX_E_OUT_OF_MEMORY,
        _ => IOX_E_INTERNAL,
    }
}

fn send_error(e: SendError) -> i32 {
    match e {
        SendError::UnableToDeliver => IOX_E_WOULD_BLOCK,
        SendError::LoanError(l) => loan_error(l),
        SendError::ConnectionBrokenSinceSenderNoLongerExists
        | SendError::ConnectionCorrupted
        | SendError::ConnectionError(_) => IOX_E_CONNECTION,
        _ => IOX_E_INTERNAL,
    }
}

extern "C" {
    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
}

/// Messages from this size on have their pages backed before they are written.
const POPULATE_FROM: usize = 64 << 10;

/// Backs the pages of `len` bytes at `ptr` with memory before anything writes
/// them. A shared-memory file system that is full makes the first write to a page
/// raise SIGBUS, which kills the process; MADV_POPULATE_WRITE (Linux 5.14) reports
/// it as an error instead. False means there is no memory for the message.
fn populate(ptr: *mut u8, len: usize) -> bool {
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

    fn loan(&self, len: usize) -> Result<(SampleMut<Svc, Bytes, Hdr>, *mut u8), i32> {
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
}

/// Loans a sample of `len` bytes, copies `data` into it (and the service's user header
/// from `hdr`, when the service has one and `hdr` is not null) and sends it: one
/// crossing. Returns the number of subscribers that got it, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_send_copy(h: *mut PublisherH, data: *const u8, len: usize, hdr: *const u8) -> i64 {
    guard_value(|| {
        let p = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        p.send_one(data, len, hdr).map(|n| n as i64)
    })
}

impl PublisherH {
    /// Loans, fills and sends one message; the number of subscribers that got it.
    unsafe fn send_one(&self, data: *const u8, len: usize, hdr: *const u8) -> Result<usize, i32> {
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
fn full_check(k: usize, expected: Option<usize>) -> Result<usize, i32> {
    match expected {
        Some(e) if k < e => Err(IOX_E_WOULD_BLOCK),
        _ => Ok(k),
    }
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
    guard_value(|| {
        let p = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
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

/// A loaned sample. Go reads `ptr` and `len` straight from the handle.
#[repr(C)]
pub struct SampleMutH {
    ptr: *mut u8,
    len: u64,
    sample: SampleMut<Svc, Bytes, Hdr>,
    /// The service, when the publisher is `BP_FAIL` (see `expected_recipients`).
    fail: Option<Arc<PubSubFactory>>,
}

/// Loans a writable sample of `len` bytes in shared memory. Returns the handle
/// (whose first two words are the payload address and length), or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_loan(h: *mut PublisherH, len: usize) -> i64 {
    guard_value(|| {
        let p = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        let (sample, ptr) = p.loan(len)?;
        let fail = p.fail.then(|| p.service.clone());
        Ok(into_handle(SampleMutH { ptr, len: len as u64, sample, fail }) as i64)
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

/// Returns a loaned sample unsent.
#[no_mangle]
pub unsafe extern "C" fn iox_sample_mut_drop(h: *mut SampleMutH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

/// Connects to new subscribers now (delivers history to late joiners).
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_update(h: *mut PublisherH) -> i32 {
    guard(|| {
        let Some(p) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        match p.publisher.update_connections() {
            Ok(()) => IOX_OK,
            Err(_) => IOX_E_CONNECTION,
        }
    })
}

// ---------------------------------------------------------------------------
// subscriber
// ---------------------------------------------------------------------------

type RxSample = Sample<Svc, Bytes, Hdr>;

pub struct SubscriberH {
    subscriber: Subscriber<Svc, Bytes, Hdr>,
    header: usize,
    /// A received sample that did not fit the caller's buffer; delivered first next time.
    pending: Mutex<Option<RxSample>>,
}

#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_create(
    svc: *mut PubSubH,
    buffer_size: u64,
    out: *mut *mut SubscriberH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard_err(errbuf, errcap, || {
        let Some(s) = handle(svc) else { return IOX_E_INVALID_ARGUMENT };
        if out.is_null() {
            return IOX_E_INVALID_ARGUMENT;
        }
        let c = s.factory.static_config();
        if buffer_size > c.subscriber_max_buffer_size() as u64 {
            let msg = format!("SubscriberBuffer {buffer_size} is over the service's BufferSize {}", c.subscriber_max_buffer_size());
            return refuse(IOX_E_INVALID_ARGUMENT, &msg, errbuf, errcap);
        }
        let shape = existing_shape(c, 2, 1);
        let need = shape.subscriber() + shape.publishers * shape.connection();
        if let Err(msg) = bounds::check_bytes("the subscriber (with a connection to every publisher the service admits)", need) {
            return refuse(IOX_E_OUT_OF_MEMORY, &msg, errbuf, errcap);
        }
        let mut b = s.factory.subscriber_builder();
        if buffer_size > 0 {
            b = b.buffer_size(buffer_size as usize);
        }
        match b.create() {
            Ok(subscriber) => {
                put(out, into_handle(SubscriberH { subscriber, header: s.header, pending: Mutex::new(None) }));
                IOX_OK
            }
            Err(e) => fail(e, errbuf, errcap),
        }
    })
}

/// Writes the subscriber's unique port id (low, high).
#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_id(h: *mut SubscriberH, lo: *mut u64, hi: *mut u64) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let v = s.subscriber.id().value();
        put(lo, v as u64);
        put(hi, (v >> 64) as u64);
        IOX_OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_drop(h: *mut SubscriberH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

fn payload_of(s: &RxSample) -> &[u8] {
    let p = s.payload();
    unsafe { std::slice::from_raw_parts(p.as_ptr() as *const u8, p.len()) }
}

impl SubscriberH {
    fn next(&self, pending: &mut Option<RxSample>) -> Result<Option<RxSample>, i32> {
        if let Some(s) = pending.take() {
            return Ok(Some(s));
        }
        match self.subscriber.receive() {
            Ok(s) => Ok(s),
            Err(iceoryx2::port::ReceiveError::ExceedsMaxBorrows) => Err(IOX_E_TOO_MANY_LOANS),
            Err(_) => Err(IOX_E_CONNECTION),
        }
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
    guard_value(|| {
        let s = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
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
                let need = data.len() as u64;
                if n == 0 {
                    *lens = need;
                    if s.header > 0 && !hdrs.is_null() {
                        // the caller may drop the message and still needs its header
                        let src = sample.user_header() as *const Hdr as *const u8;
                        std::ptr::copy_nonoverlapping(src, hdrs, s.header);
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
                let src = sample.user_header() as *const Hdr as *const u8;
                std::ptr::copy_nonoverlapping(src, hdrs.add(n * s.header), s.header);
            }
            used += data.len();
            n += 1;
        }
        Ok(n as i64)
    })
}

/// A borrowed sample. Go reads `ptr` and `len` straight from the handle.
#[repr(C)]
pub struct SampleH {
    ptr: *const u8,
    len: u64,
    _sample: RxSample,
}

/// Borrows the next message in place. Returns its handle (whose first two words are
/// the payload address and length, valid until `iox_sample_release`), 0 when no
/// message waits, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_borrow(h: *mut SubscriberH) -> i64 {
    guard_value(|| {
        let s = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        let mut pending = s.pending.lock().unwrap_or_else(|p| p.into_inner());
        match s.next(&mut pending)? {
            Some(sample) => {
                let data = payload_of(&sample);
                let (ptr, len) = (data.as_ptr(), data.len() as u64);
                Ok(into_handle(SampleH { ptr, len, _sample: sample }) as i64)
            }
            None => Ok(0),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn iox_sample_release(h: *mut SampleH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

/// Writes 1 to `out` when a message is waiting.
#[no_mangle]
pub unsafe extern "C" fn iox_subscriber_has_samples(h: *mut SubscriberH, out: *mut u32) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let pending = match s.pending.lock() {
            Ok(g) => g.is_some(),
            Err(p) => p.into_inner().is_some(),
        };
        if pending {
            put(out, 1);
            return IOX_OK;
        }
        match s.subscriber.has_samples() {
            Ok(b) => {
                put(out, b as u32);
                IOX_OK
            }
            Err(_) => IOX_E_CONNECTION,
        }
    })
}

// ---------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------

pub const EV_SET_MAX_NOTIFIERS: u64 = 1 << 0;
pub const EV_SET_MAX_LISTENERS: u64 = 1 << 1;
pub const EV_SET_MAX_NODES: u64 = 1 << 2;
pub const EV_SET_MAX_EVENT_ID: u64 = 1 << 3;
pub const EV_SET_CREATED_EVENT: u64 = 1 << 4;
pub const EV_SET_DROPPED_EVENT: u64 = 1 << 5;
pub const EV_SET_DEAD_EVENT: u64 = 1 << 6;

#[repr(C)]
pub struct EventOpts {
    pub set: u64,
    pub max_notifiers: u64,
    pub max_listeners: u64,
    pub max_nodes: u64,
    pub max_event_id: u64,
    pub created_event: u64,
    pub dropped_event: u64,
    pub dead_event: u64,
}

pub struct EventH {
    factory: event_factory::PortFactory<Svc>,
}

#[no_mangle]
pub unsafe extern "C" fn iox_event_open(
    node: *mut NodeH,
    name: *const u8,
    name_len: usize,
    mode: u32,
    opts: *const EventOpts,
    out: *mut *mut EventH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard_err(errbuf, errcap, || {
        let (Some(n), Some(o)) = (handle(node), opts.as_ref()) else {
            return IOX_E_INVALID_ARGUMENT;
        };
        if out.is_null() {
            return IOX_E_INVALID_ARGUMENT;
        }
        let name = match service_name(name, name_len, errbuf, errcap) {
            Ok(n) => n,
            Err(c) => return c,
        };
        if let Err((code, msg)) = event_bounds(n, o, mode) {
            return refuse(code, &msg, errbuf, errcap);
        }
        let mut b = n.node.service_builder(&name).event();
        let v = |bit: u64| o.set & bit != 0;
        if v(EV_SET_MAX_NOTIFIERS) {
            b = b.max_notifiers(o.max_notifiers as usize);
        }
        if v(EV_SET_MAX_LISTENERS) {
            b = b.max_listeners(o.max_listeners as usize);
        }
        if v(EV_SET_MAX_NODES) {
            b = b.max_nodes(o.max_nodes as usize);
        }
        if v(EV_SET_MAX_EVENT_ID) {
            b = b.event_id_max_value(o.max_event_id as usize);
        }
        if v(EV_SET_CREATED_EVENT) {
            b = b.notifier_created_event(EventId::new(o.created_event as usize));
        }
        if v(EV_SET_DROPPED_EVENT) {
            b = b.notifier_dropped_event(EventId::new(o.dropped_event as usize));
        }
        if v(EV_SET_DEAD_EVENT) {
            b = b.notifier_dead_event(EventId::new(o.dead_event as usize));
        }
        let res = match mode {
            OPEN => b.open().map_err(|e| fail(e, errbuf, errcap)),
            CREATE => b.create().map_err(|e| fail(e, errbuf, errcap)),
            OPEN_OR_CREATE => b.open_or_create().map_err(|e| fail(e, errbuf, errcap)),
            _ => Err(IOX_E_INVALID_ARGUMENT),
        };
        match res {
            Ok(factory) => {
                put(out, into_handle(EventH { factory }));
                IOX_OK
            }
            Err(c) => c,
        }
    })
}

/// Checks an event service request before iceoryx2 sees it: counts of at least
/// 1, and, when the service may be created, that the listeners' event-id sets
/// and the notifiers' connection tables fit the machine.
fn event_bounds(n: &NodeH, o: &EventOpts, mode: u32) -> Result<(), (i32, String)> {
    let set = |bit: u64| o.set & bit != 0;
    for (bit, name, v) in [
        (EV_SET_MAX_NOTIFIERS, "MaxNotifiers", o.max_notifiers),
        (EV_SET_MAX_LISTENERS, "MaxListeners", o.max_listeners),
        (EV_SET_MAX_NODES, "MaxNodes", o.max_nodes),
    ] {
        if set(bit) && (v < 1 || v > bounds::MAX_COUNT) {
            return Err((IOX_E_INVALID_ARGUMENT, format!("{name} {v} is outside 1..={}", bounds::MAX_COUNT)));
        }
    }
    let d = &n.node.config().defaults.event;
    let pick = |bit: u64, v: u64, default: usize| if set(bit) { v } else { default as u64 };
    let max_id = pick(EV_SET_MAX_EVENT_ID, o.max_event_id, d.event_id_max_value);
    if max_id >= usize::MAX as u64 / 8 {
        return Err((IOX_E_INVALID_ARGUMENT, format!("MaxEventID {max_id} overflows the size of a listener's event-id set")));
    }
    if mode == OPEN {
        return Ok(());
    }
    let listeners = pick(EV_SET_MAX_LISTENERS, o.max_listeners, d.max_listeners).max(1);
    let notifiers = pick(EV_SET_MAX_NOTIFIERS, o.max_notifiers, d.max_notifiers).max(1);
    let nodes = pick(EV_SET_MAX_NODES, o.max_nodes, d.max_nodes).max(1);
    let given = [set(EV_SET_MAX_LISTENERS), set(EV_SET_MAX_NOTIFIERS), set(EV_SET_MAX_EVENT_ID)];
    bounds::check_event(listeners, notifiers, nodes, max_id, given)
        .map_err(|(oom, m)| (if oom { IOX_E_OUT_OF_MEMORY } else { IOX_E_INVALID_ARGUMENT }, m))
}

#[no_mangle]
pub unsafe extern "C" fn iox_event_drop(h: *mut EventH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

/// Writes the number of notifiers and listeners and the largest event id.
#[no_mangle]
pub unsafe extern "C" fn iox_event_info(
    h: *mut EventH,
    notifiers: *mut u64,
    listeners: *mut u64,
    max_event_id: *mut u64,
) -> i32 {
    guard(|| {
        let Some(e) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let d = e.factory.dynamic_config();
        put(notifiers, d.number_of_notifiers() as u64);
        put(listeners, d.number_of_listeners() as u64);
        put(max_event_id, e.factory.static_config().event_id_max_value() as u64);
        IOX_OK
    })
}

pub struct NotifierH {
    notifier: Notifier<Svc>,
}

#[no_mangle]
pub unsafe extern "C" fn iox_notifier_create(
    svc: *mut EventH,
    default_id: u64,
    out: *mut *mut NotifierH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard_err(errbuf, errcap, || {
        let Some(e) = handle(svc) else { return IOX_E_INVALID_ARGUMENT };
        if out.is_null() {
            return IOX_E_INVALID_ARGUMENT;
        }
        let need = bounds::notifier_bytes(e.factory.static_config().max_listeners() as u64);
        if let Err(msg) = bounds::check_bytes("the notifier (a connection slot per listener the service admits)", need) {
            return refuse(IOX_E_OUT_OF_MEMORY, &msg, errbuf, errcap);
        }
        match e
            .factory
            .notifier_builder()
            .default_event_id(EventId::new(default_id as usize))
            .create()
        {
            Ok(notifier) => {
                put(out, into_handle(NotifierH { notifier }));
                IOX_OK
            }
            Err(err) => fail(err, errbuf, errcap),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn iox_notifier_drop(h: *mut NotifierH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

/// Notifies every listener with event `id`. Returns how many listeners were reached,
/// or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_notifier_notify(h: *mut NotifierH, id: u64) -> i64 {
    guard_value(|| {
        let n = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        match n.notifier.notify_with_custom_event_id(EventId::new(id as usize)) {
            Ok(k) => Ok(k as i64),
            Err(iceoryx2::port::notifier::NotifierNotifyError::EventIdOutOfBounds) => Err(IOX_E_EVENT_ID),
            Err(_) => Err(IOX_E_INTERNAL),
        }
    })
}

pub struct ListenerH {
    listener: Listener<Svc>,
    /// Ids drained from the listener that did not fit the caller's array yet.
    pending: Mutex<VecDeque<u64>>,
}

#[no_mangle]
pub unsafe extern "C" fn iox_listener_create(
    svc: *mut EventH,
    out: *mut *mut ListenerH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard_err(errbuf, errcap, || {
        let Some(e) = handle(svc) else { return IOX_E_INVALID_ARGUMENT };
        if out.is_null() {
            return IOX_E_INVALID_ARGUMENT;
        }
        // The service may come from another process with any largest id.
        let max_id = e.factory.static_config().event_id_max_value() as u64;
        match bounds::listener_bytes(max_id) {
            None => {
                let msg = format!("the service's MaxEventID {max_id} overflows the size of a listener's event-id set");
                return refuse(IOX_E_INVALID_ARGUMENT, &msg, errbuf, errcap);
            }
            Some(need) => {
                if let Err(msg) = bounds::check_bytes("the listener (8 bytes per event id of the service)", need) {
                    return refuse(IOX_E_OUT_OF_MEMORY, &msg, errbuf, errcap);
                }
            }
        }
        match e.factory.listener_builder().create() {
            Ok(listener) => {
                put(out, into_handle(ListenerH { listener, pending: Mutex::new(VecDeque::new()) }));
                IOX_OK
            }
            Err(err) => fail(err, errbuf, errcap),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn iox_listener_drop(h: *mut ListenerH) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop_handle(h)));
}

/// The listener's file descriptor (owned by the library: never close it), or -1.
#[no_mangle]
pub unsafe extern "C" fn iox_listener_fd(h: *mut ListenerH) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| match handle(h) {
        Some(l) => l.listener.file_descriptor().native_handle(),
        None => -1,
    }));
    r.unwrap_or(-1)
}

/// Drains pending notifications without blocking and writes up to `max` distinct
/// event ids into `ids`. Returns how many were written (when that is `max`, more may
/// remain), or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_listener_try_wait(h: *mut ListenerH, ids: *mut u64, max: usize) -> i64 {
    guard_value(|| {
        let l = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        if max == 0 || ids.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let mut pending = l.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut failed = false;
        if pending.len() < max {
            failed = l
                .listener
                .try_wait(|a| {
                    let id = a.id.as_value() as u64;
                    if !pending.contains(&id) {
                        pending.push_back(id);
                    }
                })
                .is_err();
        }
        let mut n = 0;
        while n < max {
            let Some(id) = pending.pop_front() else { break };
            *ids.add(n) = id;
            n += 1;
        }
        if n == 0 && failed {
            return Err(IOX_E_INTERNAL);
        }
        Ok(n as i64)
    })
}

// ---------------------------------------------------------------------------
// channel core: liveness and one-crossing sends
// ---------------------------------------------------------------------------

/// Decodes a node id (low, high) into the id of the process that created the
/// node and the CLOCK_MONOTONIC time (ns) at which it did, so that the caller can
/// wait for that process to exit and tell it from a later process that reuses its
/// pid. Returns `IOX_E_INVALID_ARGUMENT` when the id carries no such details.
#[no_mangle]
pub unsafe extern "C" fn iox_node_id_details(lo: u64, hi: u64, pid: *mut u64, created_ns: *mut u64) -> i32 {
    guard(|| {
        let value = (lo as u128) | ((hi as u128) << 64);
        let id: iceoryx2_bb_posix::unique_system_id::UniqueSystemId = value.into();
        let p = id.pid().value();
        if p <= 0 {
            return IOX_E_INVALID_ARGUMENT;
        }
        let t = id.creation_time();
        put(pid, p as u64);
        put(created_ns, t.seconds().saturating_mul(1_000_000_000).saturating_add(t.nanoseconds() as u64));
        IOX_OK
    })
}

/// Sends one message like `iox_publisher_send_copy` and, when it reached at least
/// one subscriber and `ntf` is not null, notifies event `id` on `ntf`: the whole
/// hot path of a channel send in one crossing. Returns the number of subscribers
/// that got the message, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_publisher_send_notify(
    h: *mut PublisherH,
    data: *const u8,
    len: usize,
    hdr: *const u8,
    ntf: *mut NotifierH,
    id: u64,
) -> i64 {
    guard_value(|| {
        let p = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        let k = p.send_one(data, len, hdr)?;
        if k > 0 {
            if let Some(n) = handle(ntf) {
                n.notifier
                    .notify_with_custom_event_id(EventId::new(id as usize))
                    .map_err(|_| IOX_E_INTERNAL)?;
            }
        }
        Ok(k as i64)
    })
}

// ---------------------------------------------------------------------------
// diagnostics
// ---------------------------------------------------------------------------

/// How many panics the library has caught since it was loaded (each was logged
/// as one line through the crate's logger and returned as `IOX_E_PANIC`).
#[no_mangle]
pub extern "C" fn iox_panic_count() -> u64 {
    bounds::panic_count()
}
