//! Request-response: a service whose clients send requests and whose servers
//! answer each with a stream of responses.
//!
//! Requests and responses are `[u8]` (or one fixed-size type each) with the
//! plain "()" user header, so that Rust and Python peers with
//! `request_response::<[u8], [u8]>()` or `Slice[c_uint8]` open the same
//! service. The exports follow the crate-wide rules: a send is
//! loan+copy+send (+ notify) in one crossing, a receive copies into the
//! caller's buffer, a full receiver is reported (`IOX_E_WOULD_BLOCK`) after at
//! most the bounded retries the caller asked for, and every handle has one drop
//! function.
//!
//! Handles: service (`ReqResH`), client (`ClientH`), pending response
//! (`PendingH`, one per sent request), server (`ServerH`) and active request
//! (`ActiveH`, one per received request). A pending response and an active
//! request keep what they need of their port alive, so they may outlive it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use iceoryx2::active_request::ActiveRequest;
use iceoryx2::pending_response::PendingResponse;
use iceoryx2::port::client::{Client, RequestSendError};
use iceoryx2::port::server::Server;
use iceoryx2::port::{BackpressureAction, BackpressureInfo, ReceiveError};
use iceoryx2::prelude::*;
use iceoryx2::response::Response;
use iceoryx2::service::port_factory::request_response as rr_factory;
use iceoryx2::service::static_config::message_type_details::{TypeDetail, TypeVariant};
use iceoryx2::service::static_config::request_response::StaticConfig as RrStatic;

use crate::guard::drop_export;
use crate::{
    bounds, fail, guard, guard_err, guard_value, handle, into_handle, put, refuse, service_name,
    text_arg, Bytes, Hdr, NodeH, NotifierH, Svc, CREATE, IOX_E_BUFFER_TOO_SMALL, IOX_E_CONNECTION,
    IOX_E_DISCONNECTED, IOX_E_EVENT_ID, IOX_E_INTERNAL, IOX_E_INVALID_ARGUMENT,
    IOX_E_LIMIT_REACHED, IOX_E_OUT_OF_MEMORY, IOX_E_TOO_MANY_LOANS, IOX_E_WOULD_BLOCK, IOX_OK, MAX_SPIN, OPEN,
    OPEN_OR_CREATE,
};
use crate::pubsub::TYPE_NAME_MAX;

type Factory = rr_factory::PortFactory<Svc, Bytes, Hdr, Bytes, Hdr>;
type Pending = PendingResponse<Svc, Bytes, Hdr, Bytes, Hdr>;
type Resp = Response<Svc, Bytes, Hdr>;
type Active = ActiveRequest<Svc, Bytes, Hdr, Bytes, Hdr>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// service
// ---------------------------------------------------------------------------

pub const RR_SET_MAX_CLIENTS: u64 = 1 << 0;
pub const RR_SET_MAX_SERVERS: u64 = 1 << 1;
pub const RR_SET_MAX_NODES: u64 = 1 << 2;
pub const RR_SET_MAX_ACTIVE_REQUESTS: u64 = 1 << 3;
pub const RR_SET_RESPONSE_BUFFER: u64 = 1 << 4;
pub const RR_SET_MAX_BORROWED_RESPONSES: u64 = 1 << 5;
pub const RR_SET_MAX_LOANED_REQUESTS: u64 = 1 << 6;
pub const RR_SET_FIRE_AND_FORGET: u64 = 1 << 7;
pub const RR_SET_SAFE_OVERFLOW_REQUESTS: u64 = 1 << 8;
pub const RR_SET_SAFE_OVERFLOW_RESPONSES: u64 = 1 << 9;

/// A payload type: `variant` 0 = dynamic slice of `size`-byte elements, 1 = one
/// fixed-size value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PayloadOpts {
    pub variant: u64,
    pub size: u64,
    pub alignment: u64,
}

/// Request-response settings; a field counts only when its bit is in `set`.
#[repr(C)]
pub struct ReqResOpts {
    pub set: u64,
    pub max_clients: u64,
    pub max_servers: u64,
    pub max_nodes: u64,
    /// Requests one client may have in flight (per server).
    pub max_active_requests: u64,
    /// Responses a client can hold unread per request and server.
    pub response_buffer: u64,
    /// Responses a client may hold borrowed per request.
    pub max_borrowed_responses: u64,
    pub max_loaned_requests: u64,
    pub fire_and_forget: u64,
    pub safe_overflow_requests: u64,
    pub safe_overflow_responses: u64,
    pub request: PayloadOpts,
    pub response: PayloadOpts,
}

/// The settings a request-response service actually has.
#[repr(C)]
pub struct ReqResConfig {
    pub max_clients: u64,
    pub max_servers: u64,
    pub max_nodes: u64,
    pub max_active_requests: u64,
    pub response_buffer: u64,
    pub max_borrowed_responses: u64,
    pub max_loaned_requests: u64,
    pub fire_and_forget: u64,
    pub safe_overflow_requests: u64,
    pub safe_overflow_responses: u64,
    pub request: PayloadOpts,
    pub response: PayloadOpts,
}

impl ReqResConfig {
    /// The settings of the static configuration `c`.
    pub fn of(c: &RrStatic) -> ReqResConfig {
        let payload = |t: &TypeDetail| PayloadOpts {
            variant: if t.variant() == TypeVariant::Dynamic { 0 } else { 1 },
            size: t.size() as u64,
            alignment: t.alignment() as u64,
        };
        ReqResConfig {
            max_clients: c.max_clients() as u64,
            max_servers: c.max_servers() as u64,
            max_nodes: c.max_nodes() as u64,
            max_active_requests: c.max_active_requests_per_client() as u64,
            response_buffer: c.max_response_buffer_size() as u64,
            max_borrowed_responses: c.max_borrowed_responses_per_pending_response() as u64,
            max_loaned_requests: c.max_loaned_requests() as u64,
            fire_and_forget: c.does_support_fire_and_forget_requests() as u64,
            safe_overflow_requests: c.has_safe_overflow_for_requests() as u64,
            safe_overflow_responses: c.has_safe_overflow_for_responses() as u64,
            request: payload(&c.request_message_type_details().payload),
            response: payload(&c.response_message_type_details().payload),
        }
    }
}

/// A type as a service stores it: `variant` 0 = dynamic slice of `size`-byte
/// elements, 1 = one fixed-size value; the name is `name_len` bytes of `name`.
#[repr(C)]
pub struct TypeInfo {
    pub variant: u64,
    pub size: u64,
    pub alignment: u64,
    pub name_len: u64,
    pub name: [u8; TYPE_NAME_MAX],
}

impl TypeInfo {
    pub fn of(t: &TypeDetail) -> TypeInfo {
        let mut out = TypeInfo {
            variant: if t.variant() == TypeVariant::Dynamic { 0 } else { 1 },
            size: t.size() as u64,
            alignment: t.alignment() as u64,
            name_len: 0,
            name: [0; TYPE_NAME_MAX],
        };
        let name = t.type_name().to_string();
        let n = name.len().min(TYPE_NAME_MAX);
        out.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        out.name_len = n as u64;
        out
    }
}

/// Everything a request-response service stores: its settings, and the types
/// of its requests and responses and of their user headers.
#[repr(C)]
pub struct ReqResDescription {
    pub config: ReqResConfig,
    pub request: TypeInfo,
    pub request_header: TypeInfo,
    pub response: TypeInfo,
    pub response_header: TypeInfo,
}

impl ReqResDescription {
    pub fn of(c: &RrStatic) -> ReqResDescription {
        let (req, resp) = (c.request_message_type_details(), c.response_message_type_details());
        ReqResDescription {
            config: ReqResConfig::of(c),
            request: TypeInfo::of(&req.payload),
            request_header: TypeInfo::of(&req.user_header),
            response: TypeInfo::of(&resp.payload),
            response_header: TypeInfo::of(&resp.user_header),
        }
    }
}

/// How a message's byte length maps to payload elements.
#[derive(Clone, Copy)]
struct Payload {
    size: usize,
    dynamic: bool,
}

impl Payload {
    fn of(t: &TypeDetail) -> Self {
        Payload { size: t.size().max(1), dynamic: t.variant() == TypeVariant::Dynamic }
    }

    /// Number of elements for a message of `len` bytes, or an error status.
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
}

pub struct ReqResH {
    factory: Arc<Factory>,
    request: Payload,
    response: Payload,
    /// Responses a server may loan at once per request unless it says otherwise.
    default_loaned_responses: usize,
}

fn type_detail(p: &PayloadOpts, name: &str) -> Result<TypeDetail, String> {
    let variant = if p.variant == 0 { TypeVariant::Dynamic } else { TypeVariant::FixedSize };
    TypeDetail::__internal_new_from_parts(variant, name, p.size as usize, p.alignment as usize)
        .map_err(|e| format!("invalid type name {name:?}: {e:?}"))
}

/// Opens, creates or opens-or-creates a request-response service whose request
/// and response payloads have the given type details (Rust `[u8]` is dynamic
/// "u8" 1/1) and the plain "()" user header.
#[no_mangle]
pub unsafe extern "C" fn iox_reqres_open(
    node: *mut NodeH,
    name: *const u8,
    name_len: usize,
    mode: u32,
    opts: *const ReqResOpts,
    req_type: *const u8,
    req_type_len: usize,
    resp_type: *const u8,
    resp_type_len: usize,
    out: *mut *mut ReqResH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    guard_err(errbuf, errcap, || {
        let (Some(n), Some(o)) = (handle(node), opts.as_ref()) else {
            return IOX_E_INVALID_ARGUMENT;
        };
        if out.is_null() || mode > OPEN_OR_CREATE {
            return IOX_E_INVALID_ARGUMENT;
        }
        let name = match service_name(name, name_len, errbuf, errcap) {
            Ok(n) => n,
            Err(c) => return c,
        };
        let (Some(req_name), Some(resp_name)) = (text_arg(req_type, req_type_len), text_arg(resp_type, resp_type_len))
        else {
            return IOX_E_INVALID_ARGUMENT;
        };
        if let Err((code, msg)) = reqres_bounds(n, o, mode) {
            return refuse(code, &msg, errbuf, errcap);
        }
        let types = (|| Ok::<_, String>((type_detail(&o.request, req_name)?, type_detail(&o.response, resp_name)?)))();
        let (req_detail, resp_detail) = match types {
            Ok(t) => t,
            Err(msg) => return refuse(IOX_E_INVALID_ARGUMENT, &msg, errbuf, errcap),
        };
        let Ok(unit) = TypeDetail::__internal_new_from_parts(TypeVariant::FixedSize, "()", 0, 1) else {
            return IOX_E_INTERNAL;
        };
        let mut b = n
            .node
            .service_builder(&name)
            .request_response::<Bytes, Bytes>()
            .request_user_header::<Hdr>()
            .response_user_header::<Hdr>();
        b = b.__internal_set_request_header_type_details(&unit);
        b = b.__internal_set_response_header_type_details(&unit);
        b = b.__internal_set_request_payload_type_details(&req_detail);
        b = b.__internal_set_response_payload_type_details(&resp_detail);
        let v = |bit: u64| o.set & bit != 0;
        if v(RR_SET_MAX_CLIENTS) {
            b = b.max_clients(o.max_clients as usize);
        }
        if v(RR_SET_MAX_SERVERS) {
            b = b.max_servers(o.max_servers as usize);
        }
        if v(RR_SET_MAX_NODES) {
            b = b.max_nodes(o.max_nodes as usize);
        }
        if v(RR_SET_MAX_ACTIVE_REQUESTS) {
            b = b.max_active_requests_per_client(o.max_active_requests as usize);
        }
        if v(RR_SET_RESPONSE_BUFFER) {
            b = b.max_response_buffer_size(o.response_buffer as usize);
        }
        if v(RR_SET_MAX_BORROWED_RESPONSES) {
            b = b.max_borrowed_responses_per_pending_response(o.max_borrowed_responses as usize);
        }
        if v(RR_SET_MAX_LOANED_REQUESTS) {
            b = b.max_loaned_requests(o.max_loaned_requests as usize);
        }
        if v(RR_SET_FIRE_AND_FORGET) {
            b = b.enable_fire_and_forget_requests(o.fire_and_forget != 0);
        }
        if v(RR_SET_SAFE_OVERFLOW_REQUESTS) {
            b = b.enable_safe_overflow_for_requests(o.safe_overflow_requests != 0);
        }
        if v(RR_SET_SAFE_OVERFLOW_RESPONSES) {
            b = b.enable_safe_overflow_for_responses(o.safe_overflow_responses != 0);
        }
        let res = match mode {
            OPEN => b.open().map_err(|e| fail(e, errbuf, errcap)),
            CREATE => b.create().map_err(|e| fail(e, errbuf, errcap)),
            _ => b.open_or_create().map_err(|e| fail(e, errbuf, errcap)),
        };
        match res {
            Ok(factory) => {
                let c = factory.static_config();
                let request = Payload::of(&c.request_message_type_details().payload);
                let response = Payload::of(&c.response_message_type_details().payload);
                let default_loaned_responses = n.node.config().defaults.request_response.server_max_loaned_responses_per_request.max(1);
                put(out, into_handle(ReqResH { factory: Arc::new(factory), request, response, default_loaned_responses }));
                IOX_OK
            }
            Err(c) => c,
        }
    })
}

/// Checks a request-response request before iceoryx2 sees it: counts of at least
/// 1 (the crate would panic on 0), type sizes that do not overflow, and, when the
/// service may be created, that the memory it needs once every port it admits
/// exists fits the machine.
fn reqres_bounds(n: &NodeH, o: &ReqResOpts, mode: u32) -> Result<(), (i32, String)> {
    let bad = |m: String| Err((IOX_E_INVALID_ARGUMENT, m));
    let set = |bit: u64| o.set & bit != 0;
    for (bit, name, v) in [
        (RR_SET_MAX_CLIENTS, "MaxClients", o.max_clients),
        (RR_SET_MAX_SERVERS, "MaxServers", o.max_servers),
        (RR_SET_MAX_NODES, "MaxNodes", o.max_nodes),
        (RR_SET_MAX_ACTIVE_REQUESTS, "MaxActiveRequests", o.max_active_requests),
        (RR_SET_RESPONSE_BUFFER, "ResponseBufferSize", o.response_buffer),
        (RR_SET_MAX_BORROWED_RESPONSES, "MaxBorrowedResponses", o.max_borrowed_responses),
        (RR_SET_MAX_LOANED_REQUESTS, "MaxLoanedRequests", o.max_loaned_requests),
    ] {
        if set(bit) && (v < 1 || v > bounds::MAX_COUNT) {
            return bad(format!("{name} {v} is outside 1..={}", bounds::MAX_COUNT));
        }
    }
    for (what, p) in [("request", &o.request), ("response", &o.response)] {
        if (p.size == 0 && p.variant != 0) || p.alignment == 0 || !p.alignment.is_power_of_two() {
            return bad(format!("{what} type: size and alignment must be positive, alignment a power of two"));
        }
        if p.alignment > bounds::MAX_ALIGNMENT || p.size > u32::MAX as u64 {
            return bad(format!(
                "{what} type: size {} or alignment {} is over {} or {}",
                p.size,
                p.alignment,
                u32::MAX,
                bounds::MAX_ALIGNMENT
            ));
        }
    }
    if mode == OPEN {
        return Ok(());
    }
    let d = &n.node.config().defaults.request_response;
    let pick = |bit: u64, v: u64, default: usize| if set(bit) { v as u128 } else { default.max(1) as u128 };
    let shape = Shape {
        clients: pick(RR_SET_MAX_CLIENTS, o.max_clients, d.max_clients),
        servers: pick(RR_SET_MAX_SERVERS, o.max_servers, d.max_servers),
        nodes: pick(RR_SET_MAX_NODES, o.max_nodes, d.max_nodes),
        active: pick(RR_SET_MAX_ACTIVE_REQUESTS, o.max_active_requests, d.max_active_requests_per_client),
        buffer: pick(RR_SET_RESPONSE_BUFFER, o.response_buffer, d.max_response_buffer_size),
        borrowed: pick(RR_SET_MAX_BORROWED_RESPONSES, o.max_borrowed_responses, d.max_borrowed_responses_per_pending_response),
        loaned_requests: pick(RR_SET_MAX_LOANED_REQUESTS, o.max_loaned_requests, d.max_loaned_requests),
        loaned_responses: d.server_max_loaned_responses_per_request.max(1) as u128,
        request_chunk: Shape::chunk(REQUEST_HEADER, o.request.size as u128, o.request.alignment as u128, 1),
        response_chunk: Shape::chunk(RESPONSE_HEADER, o.response.size as u128, o.response.alignment as u128, 1),
    };
    let knobs: Vec<Knob> = KNOBS.iter().copied().filter(|k| set(k.bit)).collect();
    check_shape("the service", &shape, &knobs, Shape::service).map_err(|m| (IOX_E_OUT_OF_MEMORY, m))
}

drop_export!(iox_reqres_drop, ReqResH);

/// Writes the service's stored settings.
#[no_mangle]
pub unsafe extern "C" fn iox_reqres_config(h: *mut ReqResH, out: *mut ReqResConfig) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        put(out, ReqResConfig::of(s.factory.static_config()));
        IOX_OK
    })
}

/// Writes the number of clients and servers connected to the service now.
#[no_mangle]
pub unsafe extern "C" fn iox_reqres_counts(h: *mut ReqResH, clients: *mut u64, servers: *mut u64) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let d = s.factory.dynamic_config();
        put(clients, d.number_of_clients() as u64);
        put(servers, d.number_of_servers() as u64);
        IOX_OK
    })
}

/// Lists the ports of the service: `which` 0 = clients, 1 = servers. Writes four
/// words per port (port id low, high, node id low, high) into `out`, at most `max`
/// ports, and returns how many ports exist (which may exceed `max`).
#[no_mangle]
pub unsafe extern "C" fn iox_reqres_list(h: *mut ReqResH, which: u32, out: *mut u64, max: usize) -> i64 {
    guard_value(|| {
        let s = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        if (max > 0 && out.is_null()) || which > 1 {
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
            d.list_clients(|p| {
                write(p.client_id.value(), p.node_id.value());
                CallbackProgression::Continue
            });
        } else {
            d.list_servers(|p| {
                write(p.server_id.value(), p.node_id.value());
                CallbackProgression::Continue
            });
        }
        Ok(n as i64)
    })
}

/// Removes dead nodes' ports from this service; writes how many nodes were cleaned.
#[no_mangle]
pub unsafe extern "C" fn iox_reqres_cleanup_dead(h: *mut ReqResH, cleaned: *mut u64, failed: *mut u64) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let st = {
            let _watch = crate::unfinished::watch();
            s.factory.try_cleanup_dead_nodes()
        };
        if st.cleanups + st.failed_cleanups > 0 {
            crate::unfinished::reap_known(); // for a hot call that waits on what they left
        }
        put(cleaned, st.cleanups as u64);
        put(failed, st.failed_cleanups as u64);
        IOX_OK
    })
}

// ---------------------------------------------------------------------------
// memory bounds
// ---------------------------------------------------------------------------

/// Segments a resizable data segment may grow to (`SegmentId` is a u8): the
/// connections keep a used-chunk flag per chunk per segment.
const SEGMENTS: u128 = 256;

const REQUEST_HEADER: u128 = std::mem::size_of::<iceoryx2::service::header::request_response::RequestHeader>() as u128;
const RESPONSE_HEADER: u128 = std::mem::size_of::<iceoryx2::service::header::request_response::ResponseHeader>() as u128;

fn prod(xs: &[u128]) -> u128 {
    xs.iter().fold(1u128, |a, &x| a.saturating_mul(x))
}

fn sum(xs: &[u128]) -> u128 {
    xs.iter().fold(0u128, |a, &x| a.saturating_add(x))
}

/// The settings that size a request-response service and its ports, as the
/// crate lays them out (iceoryx2 0.10.0, `static_config/request_response.rs`,
/// `port/client.rs`, `port/server.rs`). All values are the effective ones.
#[derive(Clone, Copy)]
struct Shape {
    clients: u128,
    servers: u128,
    nodes: u128,
    active: u128,
    buffer: u128,
    borrowed: u128,
    loaned_requests: u128,
    loaned_responses: u128,
    /// Bytes of one request and one response chunk (headers and payload).
    request_chunk: u128,
    response_chunk: u128,
}

impl Shape {
    /// Bytes of one chunk: the crate's header, no user header, `elements`
    /// payload elements of `size` bytes (`MessageTypeDetails::chunk_layout`).
    fn chunk(header: u128, size: u128, align: u128, elements: u128) -> u128 {
        let align = align.max(1);
        let up = |v: u128, a: u128| v.div_ceil(a).saturating_mul(a);
        let max_align = align.max(8);
        up(sum(&[up(header, align), prod(&[up(size.max(1), align), elements.max(1)])]), max_align)
    }

    /// Requests in a client's data segment
    /// (`required_amount_of_chunks_per_client_data_segment`); also the number of
    /// response channels each server connection of the client has.
    fn client_chunks(&self) -> u128 {
        sum(&[prod(&[self.servers, 2, self.active]), self.loaned_requests])
    }

    /// Responses in a server's data segment
    /// (`required_amount_of_chunks_per_server_data_segment`).
    fn server_chunks(&self) -> u128 {
        prod(&[self.clients, 2, self.active, sum(&[self.buffer, self.borrowed, self.loaned_responses])])
    }

    /// One client-to-server request connection: one channel with a used-chunk
    /// list per segment (a flag per request and about 32 bytes), and the
    /// request queue.
    fn request_connection(&self) -> u128 {
        sum(&[
            prod(&[SEGMENTS, sum(&[self.client_chunks(), 32])]),
            prod(&[8, sum(&[prod(&[3, self.active]), 1])]),
            1024,
        ])
    }

    /// One server-to-client response connection: a channel per request of the
    /// client, each with a used-chunk list per segment (a flag per response the
    /// server can hold) and its queue.
    fn response_connection(&self) -> u128 {
        let channel = sum(&[
            prod(&[SEGMENTS, sum(&[self.server_chunks(), 32])]),
            prod(&[8, sum(&[prod(&[2, self.buffer]), self.borrowed, 1])]),
            256,
        ]);
        sum(&[prod(&[self.client_chunks(), channel]), 1024])
    }

    /// A client's own memory: its data segment and the reference counters per
    /// request and segment.
    fn client(&self) -> u128 {
        let c = self.client_chunks();
        sum(&[prod(&[c, sum(&[self.request_chunk, 8])]), prod(&[c, SEGMENTS, 8]), 65536])
    }

    /// A server's own memory: its data segment and reference counters.
    fn server(&self) -> u128 {
        let c = self.server_chunks();
        sum(&[prod(&[c, sum(&[self.response_chunk, 8])]), prod(&[c, SEGMENTS, 8]), 65536])
    }

    fn connections(&self) -> u128 {
        sum(&[self.request_connection(), self.response_connection()])
    }

    /// One client with its connections to every server the service admits.
    fn client_port(&self) -> u128 {
        sum(&[self.client(), prod(&[self.servers, self.connections()])])
    }

    /// One server with its connections to every client the service admits.
    fn server_port(&self) -> u128 {
        sum(&[self.server(), prod(&[self.clients, self.connections()])])
    }

    /// Everything the service needs once every port it admits exists.
    fn service(&self) -> u128 {
        sum(&[
            prod(&[256, sum(&[self.clients, self.servers])]),
            prod(&[64, self.nodes]),
            4096,
            prod(&[self.clients, self.client()]),
            prod(&[self.servers, self.server()]),
            prod(&[self.clients, self.servers, self.connections()]),
        ])
    }
}

/// One setting of a shape, for naming the setting to lower.
#[derive(Clone, Copy)]
struct Knob {
    bit: u64,
    name: &'static str,
    get: fn(&Shape) -> u128,
    set: fn(&mut Shape, u128),
}

const KNOBS: [Knob; 6] = [
    Knob { bit: RR_SET_MAX_CLIENTS, name: "MaxClients", get: |s| s.clients, set: |s, v| s.clients = v },
    Knob { bit: RR_SET_MAX_SERVERS, name: "MaxServers", get: |s| s.servers, set: |s, v| s.servers = v },
    Knob { bit: RR_SET_MAX_ACTIVE_REQUESTS, name: "MaxActiveRequests", get: |s| s.active, set: |s, v| s.active = v },
    Knob { bit: RR_SET_RESPONSE_BUFFER, name: "ResponseBufferSize", get: |s| s.buffer, set: |s, v| s.buffer = v },
    Knob { bit: RR_SET_MAX_BORROWED_RESPONSES, name: "MaxBorrowedResponses", get: |s| s.borrowed, set: |s, v| s.borrowed = v },
    Knob { bit: RR_SET_MAX_LOANED_REQUESTS, name: "MaxLoanedRequests", get: |s| s.loaned_requests, set: |s, v| s.loaned_requests = v },
];

/// Checks `need(shape)` against the machine. On refusal, the detail names each
/// setting among `knobs` that alone would make it fit, with its largest value.
fn check_shape(what: &str, shape: &Shape, knobs: &[Knob], need: fn(&Shape) -> u128) -> Result<(), String> {
    let needed = need(shape);
    let (budget, whence) = bounds::budget();
    if needed <= budget {
        return Ok(());
    }
    let mut fixes = Vec::new();
    for k in knobs {
        let mut s = *shape;
        let (mut lo, mut hi) = (1u128, (k.get)(shape));
        (k.set)(&mut s, lo);
        if need(&s) > budget {
            continue;
        }
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            (k.set)(&mut s, mid);
            if need(&s) <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo < (k.get)(shape) {
            fixes.push(format!("{} at most {lo}", k.name));
        }
    }
    let advice = if fixes.is_empty() {
        "no single setting fits: lower several".to_string()
    } else {
        format!("with the other settings as they are it fits with {}", fixes.join(" or "))
    };
    Err(format!(
        "{what} needs about {} of shared memory and RAM, more than {} ({whence}); {advice}",
        bounds::human(needed),
        bounds::human(budget)
    ))
}

/// The shape of an existing service, for a port whose messages start at
/// `elements` payload elements.
fn existing_shape(s: &ReqResH, loaned_responses: u128, req_elements: u128, resp_elements: u128) -> Shape {
    let c = s.factory.static_config();
    let rq = &c.request_message_type_details().payload;
    let rs = &c.response_message_type_details().payload;
    Shape {
        clients: c.max_clients() as u128,
        servers: c.max_servers() as u128,
        nodes: c.max_nodes() as u128,
        active: c.max_active_requests_per_client() as u128,
        buffer: c.max_response_buffer_size() as u128,
        borrowed: c.max_borrowed_responses_per_pending_response() as u128,
        loaned_requests: c.max_loaned_requests() as u128,
        loaned_responses,
        request_chunk: Shape::chunk(REQUEST_HEADER, rq.size() as u128, rq.alignment() as u128, req_elements),
        response_chunk: Shape::chunk(RESPONSE_HEADER, rs.size() as u128, rs.alignment() as u128, resp_elements),
    }
}

// ---------------------------------------------------------------------------
// shared by both ports
// ---------------------------------------------------------------------------

/// Chunks whose pages are known to be backed: address → bytes populated.
/// Chunks are reused, so after the first round a loan needs no system call.
#[derive(Default)]
struct Populated(Mutex<HashMap<usize, usize>>);

impl Populated {
    /// Backs the pages of a large message before it is written (see
    /// `crate::populate`); false when there is no memory for it.
    fn ensure(&self, ptr: *mut u8, len: usize) -> bool {
        if len < crate::POPULATE_FROM {
            return true;
        }
        let mut done = lock(&self.0);
        if done.get(&(ptr as usize)).is_some_and(|&n| n >= len) {
            return true;
        }
        if !crate::populate(ptr, len) {
            return false;
        }
        done.insert(ptr as usize, len);
        true
    }
}

/// Initial message capacity in payload elements and the allocation strategy.
fn sizing(p: Payload, initial_max_len: u64, allocation: u64) -> (usize, AllocationStrategy) {
    let elems = if p.dynamic { (initial_max_len as usize).div_ceil(p.size).max(1) } else { 1 };
    let alloc = match allocation {
        0 => AllocationStrategy::Static,
        1 => AllocationStrategy::PowerOfTwo,
        _ => AllocationStrategy::BestFit,
    };
    (elems, alloc)
}

/// A backpressure handler that retries a full receiver `spin` times, then
/// fails the send with `UnableToDeliver` (`IOX_E_WOULD_BLOCK`).
fn fail_when_full(spin: u64) -> impl Fn(&BackpressureInfo) -> BackpressureAction + Send + 'static {
    move |info: &BackpressureInfo| {
        if info.retries < spin {
            BackpressureAction::Retry
        } else {
            BackpressureAction::DiscardDataAndFail
        }
    }
}

unsafe fn notify(ntf: *mut NotifierH, id: u64) -> Result<(), i32> {
    if let Some(n) = handle(ntf) {
        n.notifier.notify_with_custom_event_id(EventId::new(id as usize)).map_err(|e| match e {
            iceoryx2::port::notifier::NotifierNotifyError::EventIdOutOfBounds => IOX_E_EVENT_ID,
            _ => IOX_E_INTERNAL,
        })?;
    }
    Ok(())
}

fn bytes_of(p: &[iceoryx2::service::marker::CustomPayloadMarker]) -> &[u8] {
    unsafe { std::slice::from_raw_parts(p.as_ptr() as *const u8, p.len()) }
}

// ---------------------------------------------------------------------------
// client
// ---------------------------------------------------------------------------

#[repr(C)]
pub struct ClientOpts {
    /// Initial capacity in bytes of one request; the data segment grows beyond it.
    pub initial_max_len: u64,
    /// 0 = static (never grows), 1 = power-of-two growth, 2 = best fit growth.
    pub allocation: u64,
    /// Requests this client may have in flight (0 = the service's MaxActiveRequests).
    pub max_active_requests: u64,
    /// Retries on a full server buffer before `IOX_E_WOULD_BLOCK` (at most `MAX_SPIN`).
    pub spin: u64,
}

pub struct ClientH {
    client: Client<Svc, Bytes, Hdr, Bytes, Hdr>,
    service: Arc<Factory>,
    request: Payload,
    /// One send at a time: a send holds a loan only within the call, so the
    /// service's MaxLoanedRequests never refuses concurrent callers.
    sending: Mutex<()>,
    populated: Populated,
}

#[no_mangle]
pub unsafe extern "C" fn iox_client_create(
    svc: *mut ReqResH,
    opts: *const ClientOpts,
    out: *mut *mut ClientH,
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
        let service_active = s.factory.static_config().max_active_requests_per_client() as u64;
        if o.max_active_requests > service_active {
            let msg = format!("MaxActiveRequests {} is over the service's {service_active}", o.max_active_requests);
            return refuse(IOX_E_INVALID_ARGUMENT, &msg, errbuf, errcap);
        }
        if o.spin > MAX_SPIN {
            return refuse(IOX_E_INVALID_ARGUMENT, &format!("FailWhenFull spin {} is over {MAX_SPIN}", o.spin), errbuf, errcap);
        }
        let (elems, alloc) = sizing(s.request, o.initial_max_len, o.allocation);
        let shape = existing_shape(s, 1, elems as u128, 1);
        let knobs: &[Knob] = &[];
        if let Err(msg) = check_shape("the client (with its connections to every server the service admits)", &shape, knobs, Shape::client_port) {
            return refuse(IOX_E_OUT_OF_MEMORY, &msg, errbuf, errcap);
        }
        let mut b = s
            .factory
            .client_builder()
            .initial_max_slice_len(elems)
            .allocation_strategy(alloc)
            .backpressure_strategy(BackpressureStrategy::DiscardData)
            .set_backpressure_handler(fail_when_full(o.spin));
        if o.max_active_requests > 0 {
            b = b.max_active_requests(o.max_active_requests as usize);
        }
        match b.create() {
            Ok(client) => {
                put(out, into_handle(ClientH {
                    client,
                    service: s.factory.clone(),
                    request: s.request,
                    sending: Mutex::new(()),
                    populated: Populated::default(),
                }));
                IOX_OK
            }
            Err(e) => fail(e, errbuf, errcap),
        }
    })
}

drop_export!(iox_client_drop, ClientH);

/// Writes the client's unique port id (low, high): the origin servers see.
#[no_mangle]
pub unsafe extern "C" fn iox_client_id(h: *mut ClientH, lo: *mut u64, hi: *mut u64) -> i32 {
    guard(|| {
        let Some(c) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        let v = c.client.id().value();
        put(lo, v as u64);
        put(hi, (v >> 64) as u64);
        IOX_OK
    })
}

fn request_send_error(e: RequestSendError) -> i32 {
    match e {
        RequestSendError::ExceedsMaxActiveRequests => IOX_E_LIMIT_REACHED,
        RequestSendError::SendError(s) => crate::send_error(s),
    }
}

impl ClientH {
    /// Loans, fills and sends one request.
    unsafe fn send(&self, data: *const u8, len: usize) -> Result<Pending, i32> {
        if len > 0 && data.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let n = self.request.elements(len)?;
        let _one = lock(&self.sending);
        let mut uninit = self.client.loan_custom_payload(n).map_err(crate::loan_error)?;
        let ptr = uninit.payload_mut().as_mut_ptr() as *mut u8;
        if !self.populated.ensure(ptr, len) {
            return Err(IOX_E_OUT_OF_MEMORY); // dropping the request returns the chunk
        }
        if len > 0 {
            std::ptr::copy_nonoverlapping(data, ptr, len);
        }
        // A full buffer of a server that has not attached its end of the
        // connection yet is skipped silently (see `PublisherH::expected_recipients`):
        // counting the servers before the send finds that case too.
        let expected = self.service.dynamic_config().number_of_servers();
        let pending = uninit.assume_init().send().map_err(request_send_error)?;
        let reached = pending.number_of_server_connections();
        if reached < expected {
            return Err(IOX_E_WOULD_BLOCK); // dropping the pending response withdraws the request
        }
        if reached == 0 {
            return Err(IOX_E_DISCONNECTED);
        }
        Ok(pending)
    }
}

/// Sends one request of `len` bytes from `data` (loan, copy, send) and, when
/// `ntf` is not null, notifies event `id` on it: one crossing. Returns the
/// handle of the pending response, or a negated status: `IOX_E_LIMIT_REACHED`
/// when the client has its maximum of requests in flight, `IOX_E_WOULD_BLOCK`
/// when a server's request buffer is full, `IOX_E_DISCONNECTED` when no server
/// is there, `IOX_E_TOO_LARGE` for a request the client cannot hold.
#[no_mangle]
pub unsafe extern "C" fn iox_client_send_notify(h: *mut ClientH, data: *const u8, len: usize, ntf: *mut NotifierH, id: u64) -> i64 {
    guard_value(|| {
        let c = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        let pending = c.send(data, len)?;
        notify(ntf, id)?; // on failure the request is withdrawn with its pending response
        Ok(into_handle(PendingH { state: Mutex::new(PendingState { parked: None, pending }) }) as i64)
    })
}

// ---------------------------------------------------------------------------
// pending response
// ---------------------------------------------------------------------------

struct PendingState {
    /// A response that did not fit the caller's buffer; delivered first next time.
    /// Declared first: it is released before the pending response closes.
    parked: Option<Resp>,
    pending: Pending,
}

pub struct PendingH {
    state: Mutex<PendingState>,
}

drop_export!(iox_pending_drop, PendingH);

fn receive_error(e: ReceiveError) -> i32 {
    match e {
        ReceiveError::ExceedsMaxBorrows => IOX_E_TOO_MANY_LOANS,
        _ => IOX_E_CONNECTION,
    }
}

/// Copies up to `max` responses into `buf` back to back; `lens[i]` receives
/// the length of response i. Returns how many were copied, or a negated status.
/// A response larger than the room left stays queued for the next call; one
/// larger than the whole `cap` gives `IOX_E_BUFFER_TOO_SMALL` with its length in
/// `lens[0]`. `connected` (may be null) is set to 0 once every server ended the
/// stream (or left) and nothing is left to receive, else to 1.
#[no_mangle]
pub unsafe extern "C" fn iox_pending_receive(
    h: *mut PendingH,
    buf: *mut u8,
    cap: usize,
    lens: *mut u64,
    max: usize,
    connected: *mut u32,
) -> i64 {
    guard_value(|| {
        let p = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        if (cap > 0 && buf.is_null()) || max == 0 || lens.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let mut st = lock(&p.state);
        // Servers send their responses before they end the stream: seen ended
        // now, everything they sent is already queued.
        let live = st.pending.is_connected();
        let (mut n, mut used, mut more) = (0usize, 0usize, false);
        while n < max {
            let resp = match st.parked.take() {
                Some(r) => r,
                None => match st.pending.receive_custom_payload() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) if n == 0 => return Err(receive_error(e)),
                    Err(_) => {
                        more = true;
                        break;
                    }
                },
            };
            let data = bytes_of(resp.payload());
            if data.len() > cap - used {
                more = true;
                if n == 0 {
                    *lens = data.len() as u64;
                    st.parked = Some(resp);
                    put(connected, 1);
                    return Err(IOX_E_BUFFER_TOO_SMALL);
                }
                st.parked = Some(resp);
                break;
            }
            if !data.is_empty() {
                std::ptr::copy_nonoverlapping(data.as_ptr(), buf.add(used), data.len());
            }
            *lens.add(n) = data.len() as u64;
            used += data.len();
            n += 1;
        }
        if n == max {
            more = true;
        }
        put(connected, (live || more) as u32);
        Ok(n as i64)
    })
}

/// Drops the next response unread (one the caller will not take, such as one
/// over its size limit). Returns 1 when it dropped one, 0 when none waits, or a
/// negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_pending_skip(h: *mut PendingH) -> i64 {
    guard_value(|| {
        let p = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        let mut st = lock(&p.state);
        if st.parked.take().is_some() {
            return Ok(1);
        }
        match st.pending.receive_custom_payload() {
            Ok(r) => Ok(r.is_some() as i64),
            Err(e) => Err(receive_error(e)),
        }
    })
}

/// Returns 1 while a server may still respond or a response waits, 0 once every
/// server ended the stream (or left) and nothing is left, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_pending_connected(h: *mut PendingH) -> i64 {
    guard_value(|| {
        let p = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        let st = lock(&p.state);
        let live = st.pending.is_connected();
        Ok((live || st.parked.is_some() || st.pending.has_response()) as i64)
    })
}

// ---------------------------------------------------------------------------
// server
// ---------------------------------------------------------------------------

#[repr(C)]
pub struct ServerOpts {
    /// Initial capacity in bytes of one response; the data segment grows beyond it.
    pub initial_max_len: u64,
    /// 0 = static (never grows), 1 = power-of-two growth, 2 = best fit growth.
    pub allocation: u64,
    /// Responses that may be loaned at once per active request (0 = the default).
    pub max_loaned: u64,
    /// Retries on a full client buffer before `IOX_E_WOULD_BLOCK` (at most `MAX_SPIN`).
    pub spin: u64,
}

pub struct ServerH {
    /// A request that did not fit the caller's buffer; delivered first next time.
    parked: Mutex<Option<Active>>,
    server: Server<Svc, Bytes, Hdr, Bytes, Hdr>,
    response: Payload,
    populated: Arc<Populated>,
}

#[no_mangle]
pub unsafe extern "C" fn iox_server_create(
    svc: *mut ReqResH,
    opts: *const ServerOpts,
    out: *mut *mut ServerH,
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
        if o.max_loaned > bounds::MAX_COUNT {
            return refuse(IOX_E_INVALID_ARGUMENT, &format!("MaxLoans {} is over {}", o.max_loaned, bounds::MAX_COUNT), errbuf, errcap);
        }
        if o.spin > MAX_SPIN {
            return refuse(IOX_E_INVALID_ARGUMENT, &format!("FailWhenFull spin {} is over {MAX_SPIN}", o.spin), errbuf, errcap);
        }
        let (elems, alloc) = sizing(s.response, o.initial_max_len, o.allocation);
        let loaned = if o.max_loaned > 0 { o.max_loaned as u128 } else { s.default_loaned_responses as u128 };
        let shape = existing_shape(s, loaned, 1, elems as u128);
        if let Err(msg) = check_shape("the server (with its connections to every client the service admits)", &shape, &[], Shape::server_port) {
            return refuse(IOX_E_OUT_OF_MEMORY, &msg, errbuf, errcap);
        }
        let mut b = s
            .factory
            .server_builder()
            .initial_max_slice_len(elems)
            .allocation_strategy(alloc)
            .backpressure_strategy(BackpressureStrategy::DiscardData)
            .set_backpressure_handler(fail_when_full(o.spin));
        if o.max_loaned > 0 {
            b = b.max_loaned_responses_per_request(o.max_loaned as usize);
        }
        match b.create() {
            Ok(server) => {
                put(out, into_handle(ServerH {
                    parked: Mutex::new(None),
                    server,
                    response: s.response,
                    populated: Arc::new(Populated::default()),
                }));
                IOX_OK
            }
            Err(e) => fail(e, errbuf, errcap),
        }
    })
}

drop_export!(iox_server_drop, ServerH);

/// Writes 1 to `out` when a request is waiting.
#[no_mangle]
pub unsafe extern "C" fn iox_server_has_requests(h: *mut ServerH, out: *mut u32) -> i32 {
    guard(|| {
        let Some(s) = handle(h) else { return IOX_E_INVALID_ARGUMENT };
        if lock(&s.parked).is_some() {
            put(out, 1);
            return IOX_OK;
        }
        match s.server.has_requests() {
            Ok(b) => {
                put(out, b as u32);
                IOX_OK
            }
            Err(_) => IOX_E_CONNECTION,
        }
    })
}

/// Receives one request: copies it into `buf`, writes its length to `len`, the
/// handle of its active request to `active` (through which the responses go)
/// and the sending client's port id to `client_lo`/`client_hi`. Returns 1, 0
/// when no request waits, or a negated status. A request larger than `cap`
/// gives `IOX_E_BUFFER_TOO_SMALL` with its length in `len` and stays queued.
#[no_mangle]
pub unsafe extern "C" fn iox_server_receive(
    h: *mut ServerH,
    buf: *mut u8,
    cap: usize,
    len: *mut u64,
    active: *mut *mut ActiveH,
    client_lo: *mut u64,
    client_hi: *mut u64,
) -> i64 {
    guard_value(|| {
        let s = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        if (cap > 0 && buf.is_null()) || len.is_null() || active.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let mut parked = lock(&s.parked);
        let req = match parked.take() {
            Some(a) => a,
            None => match s.server.receive() {
                Ok(Some(a)) => a,
                Ok(None) => return Ok(0),
                Err(e) => return Err(receive_error(e)),
            },
        };
        let data = bytes_of(req.payload());
        *len = data.len() as u64;
        if data.len() > cap {
            *parked = Some(req);
            return Err(IOX_E_BUFFER_TOO_SMALL);
        }
        if !data.is_empty() {
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        }
        let origin = req.origin().value();
        put(client_lo, origin as u64);
        put(client_hi, (origin >> 64) as u64);
        *active = into_handle(ActiveH { active: Mutex::new(req), response: s.response, populated: s.populated.clone() });
        Ok(1)
    })
}

// ---------------------------------------------------------------------------
// active request
// ---------------------------------------------------------------------------

pub struct ActiveH {
    /// Locked for each response: the responses of one request stay in order and
    /// a send holds its loan only within the call.
    active: Mutex<Active>,
    response: Payload,
    populated: Arc<Populated>,
}

drop_export!(
    /// Ends the response stream of the request: the client's pending response
    /// sees it once it has received what was sent before.
    iox_active_drop,
    ActiveH
);

/// Returns 1 while the client still waits for responses (its pending response
/// exists), 0 once it gave up or is gone, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_active_connected(h: *mut ActiveH) -> i64 {
    guard_value(|| {
        let a = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        Ok(lock(&a.active).is_connected() as i64)
    })
}

/// Sends one response of `len` bytes from `data` (loan, copy, send) to the
/// request's client and, when `ntf` is not null, notifies event `id` on it: one
/// crossing. Returns 1, or a negated status: `IOX_E_DISCONNECTED` when the
/// client no longer waits for responses, `IOX_E_WOULD_BLOCK` when its buffer is
/// full (on a service without safe overflow for responses).
#[no_mangle]
pub unsafe extern "C" fn iox_active_respond_notify(h: *mut ActiveH, data: *const u8, len: usize, ntf: *mut NotifierH, id: u64) -> i64 {
    guard_value(|| {
        let a = handle(h).ok_or(IOX_E_INVALID_ARGUMENT)?;
        if len > 0 && data.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let n = a.response.elements(len)?;
        {
            let active = lock(&a.active);
            // The crate drops a response to a closed stream silently.
            if !active.is_connected() {
                return Err(IOX_E_DISCONNECTED);
            }
            let mut uninit = active.loan_custom_payload(n).map_err(crate::loan_error)?;
            let ptr = uninit.payload_mut().as_mut_ptr() as *mut u8;
            if !a.populated.ensure(ptr, len) {
                return Err(IOX_E_OUT_OF_MEMORY);
            }
            if len > 0 {
                std::ptr::copy_nonoverlapping(data, ptr, len);
            }
            uninit.assume_init().send().map_err(crate::send_error)?;
        }
        notify(ntf, id)?;
        Ok(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Shape {
        // iceoryx2's defaults, 4 KiB byte messages
        Shape {
            clients: 8,
            servers: 2,
            nodes: 20,
            active: 4,
            buffer: 2,
            borrowed: 2,
            loaned_requests: 2,
            loaned_responses: 2,
            request_chunk: Shape::chunk(REQUEST_HEADER, 1, 1, 4096),
            response_chunk: Shape::chunk(RESPONSE_HEADER, 1, 1, 4096),
        }
    }

    // Sizes iceoryx2 0.10.0 really creates for the defaults with power-of-two
    // growth (measured in /dev/shm: request connection 13066 bytes, response
    // connection 1912530, client data segment 75095, server data segment
    // 1596047; 33.4 MiB for 8 clients and 2 servers).
    #[test]
    fn the_estimate_follows_the_crates_layout() {
        let s = defaults();
        assert_eq!(s.client_chunks(), 18);
        assert_eq!(s.server_chunks(), 384);
        let r = s.request_connection();
        assert!((13066..13066 + 2048).contains(&r), "request connection {r}");
        let r = s.response_connection();
        assert!((1912530..1912530 + 32768).contains(&r), "response connection {r}");
        // at most 1% over what the crate creates
        let data = s.client_chunks() * (s.request_chunk + 8);
        assert!((75095 * 99 / 100..75095 * 101 / 100).contains(&data), "client data segment {data}");
        let data = s.server_chunks() * (s.response_chunk + 8);
        assert!((1596047..1596047 * 101 / 100).contains(&data), "server data segment {data}");
        let total = s.service();
        assert!((33 << 20..48 << 20).contains(&total), "service {}", bounds::human(total));
    }

    #[test]
    fn huge_counts_saturate_instead_of_overflowing() {
        let s = Shape { clients: 1 << 20, servers: 1 << 20, active: 1 << 20, buffer: 1 << 20, ..defaults() };
        assert_eq!(s.service(), u128::MAX);
        assert!(check_shape("the service", &s, &KNOBS, Shape::service).is_err());
    }
}
