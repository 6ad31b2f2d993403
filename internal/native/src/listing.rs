//! What a namespace holds: its services and its nodes, listed with the crate's
//! own `Service::list` and `Node::list`.
//!
//! A listing is written in one crossing as packed records into the caller's
//! buffer: each record starts with a fixed header of u64 words whose first word
//! is the record's size in bytes, and ends with its strings, padded to a
//! multiple of 8 bytes. When the buffer is too short nothing is written, the
//! status is `IOX_E_BUFFER_TOO_SMALL` and `needed` says how many bytes the
//! listing takes now (a namespace can change between two calls: the caller
//! asks again with at least that much).

use iceoryx2::node::{NodeState, NodeView};
use iceoryx2::prelude::*;
use iceoryx2::service::static_config::messaging_pattern::MessagingPattern as StaticPattern;
use iceoryx2::service::static_config::StaticConfig;
use iceoryx2::service::{Service, ServiceDetails};

use crate::guard::{on_cold, put, Fail, Outcome};
use crate::status::*;
use crate::{Bytes, Hdr, NodeH, Svc};

/// Messaging patterns as the records give them.
pub const PATTERN_PUBLISH_SUBSCRIBE: u64 = 0;
pub const PATTERN_EVENT: u64 = 1;
pub const PATTERN_REQUEST_RESPONSE: u64 = 2;
pub const PATTERN_BLACKBOARD: u64 = 3;
/// A pattern of a later iceoryx2 release.
pub const PATTERN_OTHER: u64 = 255;

/// One service of `iox_service_list`, followed by its name (`name_len` bytes).
#[repr(C)]
pub struct ServiceRecord {
    /// Bytes of the record: this header, the name and its padding.
    pub size: u64,
    pub pattern: u64,
    /// Nodes registered with the service, dead ones not yet cleaned up included.
    pub nodes: u64,
    /// 1 when `ports` holds the counts of the service's ports: publishers and
    /// subscribers, notifiers and listeners, or clients and servers.
    pub ports_known: u64,
    pub ports: [u64; 2],
    pub name_len: u64,
}

/// Node states as the records give them.
pub const NODE_ALIVE: u64 = 0;
pub const NODE_DEAD: u64 = 1;
/// The node's files are not readable by this process (another user's node).
pub const NODE_INACCESSIBLE: u64 = 2;
/// The node's files are incomplete or inconsistent (being created or removed).
pub const NODE_UNDEFINED: u64 = 3;

/// One node of `iox_node_list`, followed by its name (`name_len` bytes) and the
/// file name of its process's executable (`executable_len` bytes); both are
/// empty when the node's details cannot be read.
#[repr(C)]
pub struct NodeRecord {
    /// Bytes of the record: this header, the strings and their padding.
    pub size: u64,
    pub state: u64,
    pub id_lo: u64,
    pub id_hi: u64,
    pub name_len: u64,
    pub executable_len: u64,
}

/// Appends the `N` words of a record header, its strings and the padding that
/// takes the record to a multiple of 8 bytes; the first word becomes the size.
fn push_record<const N: usize>(out: &mut Vec<u8>, mut words: [u64; N], strings: &[&[u8]]) {
    let text: usize = strings.iter().map(|s| s.len()).sum();
    let size = (N * 8 + text).div_ceil(8) * 8;
    words[0] = size as u64;
    let start = out.len();
    for w in words {
        out.extend_from_slice(&w.to_ne_bytes());
    }
    for s in strings {
        out.extend_from_slice(s);
    }
    out.resize(start + size, 0);
}

const _: () = assert!(std::mem::size_of::<ServiceRecord>() == 7 * 8);
const _: () = assert!(std::mem::size_of::<NodeRecord>() == 6 * 8);

/// Copies the packed `records` (`count` of them) to the caller's buffer when
/// they fit; `needed` always gets their size.
///
/// # Safety
/// `buf` is null or valid for `cap` bytes; `needed` and `count` are null or valid.
unsafe fn deliver(records: &[u8], count: u64, buf: *mut u8, cap: usize, needed: *mut u64, written: *mut u64) -> Outcome {
    put(needed, records.len() as u64);
    if records.len() > cap || (cap > 0 && buf.is_null() && !records.is_empty()) {
        return Err(Fail::new(IOX_E_BUFFER_TOO_SMALL, format!("the listing takes {} bytes, the buffer has {cap}", records.len())));
    }
    if !records.is_empty() {
        std::ptr::copy_nonoverlapping(records.as_ptr(), buf, records.len());
    }
    put(written, count);
    Ok(())
}

/// The port counts of the service `c` describes, found by opening it from `n`
/// with the types it has (opening creates no port). None when it cannot be
/// opened now (it is being removed, it admits no further node, …).
fn port_counts(n: &NodeH, c: &StaticConfig) -> Option<[u64; 2]> {
    let name = c.name();
    match c.messaging_pattern() {
        StaticPattern::PublishSubscribe(ps) => {
            let t = ps.message_type_details();
            let b = n.node.service_builder(name).publish_subscribe::<Bytes>().user_header::<Hdr>();
            // The stored type details are the service's own, so the opening
            // checks them against themselves.
            let b = unsafe { b.__internal_set_user_header_type_details(&t.user_header).__internal_set_payload_type_details(&t.payload) };
            let f = b.open().ok()?;
            let d = f.dynamic_config();
            Some([d.number_of_publishers() as u64, d.number_of_subscribers() as u64])
        }
        StaticPattern::Event(_) => {
            let f = n.node.service_builder(name).event().open().ok()?;
            let d = f.dynamic_config();
            Some([d.number_of_notifiers() as u64, d.number_of_listeners() as u64])
        }
        StaticPattern::RequestResponse(rr) => {
            let (req, resp) = (rr.request_message_type_details(), rr.response_message_type_details());
            let b = n
                .node
                .service_builder(name)
                .request_response::<Bytes, Bytes>()
                .request_user_header::<Hdr>()
                .response_user_header::<Hdr>();
            let b = unsafe {
                b.__internal_set_request_header_type_details(&req.user_header)
                    .__internal_set_response_header_type_details(&resp.user_header)
                    .__internal_set_request_payload_type_details(&req.payload)
                    .__internal_set_response_payload_type_details(&resp.payload)
            };
            let f = b.open().ok()?;
            let d = f.dynamic_config();
            Some([d.number_of_clients() as u64, d.number_of_servers() as u64])
        }
        StaticPattern::Blackboard(b) => crate::blackboard::port_counts(n, name, b),
        // A pattern of a later release is not known at all.
        #[allow(unreachable_patterns)] // #[non_exhaustive]
        _ => None,
    }
}

fn pattern_code(c: &StaticConfig) -> u64 {
    match c.messaging_pattern() {
        StaticPattern::PublishSubscribe(_) => PATTERN_PUBLISH_SUBSCRIBE,
        StaticPattern::Event(_) => PATTERN_EVENT,
        StaticPattern::RequestResponse(_) => PATTERN_REQUEST_RESPONSE,
        StaticPattern::Blackboard(_) => PATTERN_BLACKBOARD,
        #[allow(unreachable_patterns)] // #[non_exhaustive]
        _ => PATTERN_OTHER,
    }
}

/// The record of one service.
fn service_record(out: &mut Vec<u8>, n: &NodeH, s: &ServiceDetails<Svc>) {
    let c = &s.static_details;
    let nodes = s.dynamic_details.as_ref().map_or(0, |d| d.nodes.len() as u64);
    let ports = port_counts(n, c);
    let name = c.name().as_str().as_bytes();
    push_record(
        out,
        [0, pattern_code(c), nodes, ports.is_some() as u64, ports.map_or(0, |p| p[0]), ports.map_or(0, |p| p[1]), name.len() as u64],
        &[name],
    );
}

/// Lists every service of the node's namespace as `ServiceRecord`s into `buf`
/// (see the module's notes on the buffer); `count` gets the number of records.
/// Services that another iceoryx2 release made, and services still being
/// created, are left out. Counting a service's ports opens it briefly from this
/// node, which (as any opening) removes dead nodes' resources from it unless
/// the node was created with `NODE_NO_AUTO_CLEANUP`.
#[no_mangle]
pub unsafe extern "C" fn iox_service_list(
    node: *mut NodeH,
    buf: *mut u8,
    cap: usize,
    needed: *mut u64,
    count: *mut u64,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(node, errbuf, errcap, |n| {
        let mut records = Vec::new();
        let mut found = 0u64;
        // The callback gets each service's details; the ports are counted
        // after the walk, so that no service is opened while the crate walks.
        let mut services = Vec::new();
        Svc::list(n.node.config(), |s| {
            services.push(s);
            CallbackProgression::Continue
        })?;
        for s in &services {
            service_record(&mut records, n, s);
            found += 1;
        }
        deliver(&records, found, buf, cap, needed, count)
    })
}

/// The state code, id and details of one node.
fn node_record(out: &mut Vec<u8>, state: &NodeState<Svc>) {
    let (code, details) = match state {
        NodeState::Alive(v) => (NODE_ALIVE, v.details().as_ref()),
        NodeState::Dead(v) => (NODE_DEAD, v.details().as_ref()),
        NodeState::Inaccessible(_) => (NODE_INACCESSIBLE, None),
        NodeState::Undefined(_) => (NODE_UNDEFINED, None),
    };
    let id = state.node_id().value();
    let name = details.map(|d| d.name().as_str().to_string()).unwrap_or_default();
    let exe = details.map(|d| d.executable().to_string()).unwrap_or_default();
    push_record(
        out,
        [0, code, id as u64, (id >> 64) as u64, name.len() as u64, exe.len() as u64],
        &[name.as_bytes(), exe.as_bytes()],
    );
}

/// Lists every node of the node's namespace (itself included) as `NodeRecord`s
/// into `buf` (see the module's notes on the buffer); `count` gets the number
/// of records. Listing changes nothing: dead nodes stay until a cleanup.
#[no_mangle]
pub unsafe extern "C" fn iox_node_list(
    node: *mut NodeH,
    buf: *mut u8,
    cap: usize,
    needed: *mut u64,
    count: *mut u64,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(node, errbuf, errcap, |n| {
        let mut records = Vec::new();
        let mut found = 0u64;
        Node::<Svc>::list(n.node.config(), |state| {
            node_record(&mut records, &state);
            found += 1;
            CallbackProgression::Continue
        })?;
        deliver(&records, found, buf, cap, needed, count)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::into_handle;
    use crate::node::{iox_node_drop, isolated_config};

    fn node(config: &Config) -> *mut NodeH {
        let node = NodeBuilder::new().signal_handling_mode(SignalHandlingMode::Disabled).config(config).create::<Svc>().unwrap();
        into_handle(NodeH::new(node))
    }

    fn words(b: &[u8], n: usize) -> Vec<u64> {
        (0..n).map(|i| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap())).collect()
    }

    #[test]
    fn records_are_padded_to_words_and_carry_their_size() {
        let mut out = Vec::new();
        push_record(&mut out, [0u64, 7], &[b"abc", b"de"]);
        assert_eq!(out.len(), 24);
        assert_eq!(words(&out, 2), vec![24, 7]);
        assert_eq!(&out[16..21], b"abcde");
        assert!(out[21..].iter().all(|&b| b == 0));
        push_record(&mut out, [0u64, 1], &[b"12345678"]);
        assert_eq!(out.len(), 48, "a string of whole words needs no padding");
    }

    #[test]
    fn a_short_buffer_gets_nothing_but_the_size_needed() {
        let records = [1u8; 40];
        let mut buf = [0u8; 16];
        let (mut needed, mut count) = (0u64, 99u64);
        let r = unsafe { deliver(&records, 2, buf.as_mut_ptr(), buf.len(), &mut needed, &mut count) };
        assert_eq!(r.unwrap_err().code, IOX_E_BUFFER_TOO_SMALL);
        assert_eq!((needed, count), (40, 99));
        assert!(buf.iter().all(|&b| b == 0));
        let mut big = [0u8; 64];
        unsafe { deliver(&records, 2, big.as_mut_ptr(), big.len(), &mut needed, &mut count) }.unwrap();
        assert_eq!((needed, count), (40, 2));
        assert_eq!(&big[..40], &records);
    }

    #[test]
    fn services_and_nodes_of_a_namespace_are_listed() {
        let id = std::process::id();
        let (prefix, root) = (format!("nl{id}_"), format!("/tmp/iox-native-test-{id}-l/"));
        let config = isolated_config(&prefix, &root).unwrap();
        let (a, b) = (node(&config), node(&config));
        let ev = unsafe { &(*a).node }.service_builder(&"listed".try_into().unwrap()).event().create().unwrap();
        let l1 = ev.listener_builder().create().unwrap();
        let l2 = ev.listener_builder().create().unwrap();
        let nt = ev.notifier_builder().create().unwrap();

        let mut buf = vec![0u8; 4096];
        let (mut needed, mut count) = (0u64, 0u64);
        let mut eb = [0u8; 128];
        let st = unsafe { iox_service_list(b, buf.as_mut_ptr(), buf.len(), &mut needed, &mut count, eb.as_mut_ptr(), eb.len()) };
        assert_eq!((st, count), (IOX_OK, 1));
        let w = words(&buf, 7);
        assert_eq!(w[0], needed);
        assert_eq!(&w[1..7], &[PATTERN_EVENT, 1, 1, 1, 2, 6]);
        assert_eq!(&buf[56..62], b"listed");

        let st = unsafe { iox_node_list(b, buf.as_mut_ptr(), 8, &mut needed, &mut count, eb.as_mut_ptr(), eb.len()) };
        assert_eq!(st, IOX_E_BUFFER_TOO_SMALL);
        let st = unsafe { iox_node_list(b, buf.as_mut_ptr(), buf.len(), &mut needed, &mut count, eb.as_mut_ptr(), eb.len()) };
        assert_eq!((st, count), (IOX_OK, 2));
        let (mut at, mut ids) = (0usize, Vec::new());
        for _ in 0..count {
            let w = words(&buf[at..], 6);
            assert_eq!(w[1], NODE_ALIVE);
            ids.push((w[2] as u128) | ((w[3] as u128) << 64));
            at += w[0] as usize;
        }
        assert_eq!(at as u64, needed);
        ids.sort();
        let mut want = vec![unsafe { &(*a).node }.id().value(), unsafe { &(*b).node }.id().value()];
        want.sort();
        assert_eq!(ids, want);

        drop((l1, l2, nt, ev));
        unsafe {
            iox_node_drop(a);
            iox_node_drop(b);
        }
        let (p, r) = (prefix.as_bytes(), root.as_bytes());
        let st = unsafe { crate::layout::iox_remove_isolation(p.as_ptr(), p.len(), r.as_ptr(), r.len(), eb.as_mut_ptr(), eb.len()) };
        assert_eq!(st, IOX_OK);
    }
}
