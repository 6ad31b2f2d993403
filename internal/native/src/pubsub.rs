//! Publish-subscribe services: opening one with its payload type and settings,
//! and what it tells about itself (settings in force, ports, cleanup).

use std::sync::Arc;

use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe as ps_factory;
use iceoryx2::service::static_config::message_type_details::{TypeDetail, TypeVariant};
use iceoryx2::service::static_config::publish_subscribe::StaticConfig as PubSubStatic;

use crate::guard::{drop_export, into_handle, invalid, need_out, on, on_cold, on_hot, put, text, Fail, Outcome};
use crate::status::*;
use crate::{bounds, existing, Bytes, Hdr, NodeH, Svc};

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

/// Longest type name iceoryx2 stores.
pub const TYPE_NAME_MAX: usize = iceoryx2::constants::MAX_TYPE_NAME_LENGTH;

/// The settings a publish-subscribe service actually has, as stored by whoever
/// created it. Variants: 0 dynamic slice, 1 fixed size.
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
    pub header_alignment: u64,
    pub header_variant: u64,
    pub payload_name_len: u64,
    pub header_name_len: u64,
    pub payload_name: [u8; TYPE_NAME_MAX],
    pub header_name: [u8; TYPE_NAME_MAX],
}

fn variant_code(v: TypeVariant) -> u64 {
    match v {
        TypeVariant::Dynamic => 0,
        TypeVariant::FixedSize => 1,
    }
}

/// Copies a type name into a fixed buffer and returns its length.
fn copy_name(name: &str, buf: &mut [u8; TYPE_NAME_MAX]) -> u64 {
    let n = name.len().min(TYPE_NAME_MAX);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    n as u64
}

impl PubSubConfig {
    /// The settings of the static configuration `c`.
    pub fn of(c: &PubSubStatic) -> PubSubConfig {
        let t = c.message_type_details();
        let (p, h) = (&t.payload, &t.user_header);
        let mut out = PubSubConfig {
            max_publishers: c.max_publishers() as u64,
            max_subscribers: c.max_subscribers() as u64,
            max_nodes: c.max_nodes() as u64,
            buffer_size: c.subscriber_max_buffer_size() as u64,
            history_size: c.history_size() as u64,
            safe_overflow: c.has_safe_overflow() as u64,
            max_borrowed: c.subscriber_max_borrowed_samples() as u64,
            variant: variant_code(p.variant()),
            size: p.size() as u64,
            alignment: p.alignment() as u64,
            header_size: h.size() as u64,
            header_alignment: h.alignment() as u64,
            header_variant: variant_code(h.variant()),
            payload_name_len: 0,
            header_name_len: 0,
            payload_name: [0; TYPE_NAME_MAX],
            header_name: [0; TYPE_NAME_MAX],
        };
        out.payload_name_len = copy_name(&p.type_name().to_string(), &mut out.payload_name);
        out.header_name_len = copy_name(&h.type_name().to_string(), &mut out.header_name);
        out
    }
}

pub type PubSubFactory = ps_factory::PortFactory<Svc, Bytes, Hdr>;

/// An open publish-subscribe service.
pub struct PubSubH {
    pub factory: Arc<PubSubFactory>,
    /// Bytes of one payload element.
    pub size: usize,
    pub dynamic: bool,
    /// Bytes of the user header (0 = none).
    pub header: usize,
}

/// Type name of the user header iox's own channel adapters put on messages.
pub const HEADER_TYPE: &str = "iox::Header";

/// The type details of the payload and user header `o` asks for.
fn requested_types(o: &PubSubOpts, tname: &str) -> Outcome<(TypeDetail, TypeDetail)> {
    let variant = if o.variant == 0 { TypeVariant::Dynamic } else { TypeVariant::FixedSize };
    let payload = TypeDetail::__internal_new_from_parts(variant, tname, o.size as usize, o.alignment as usize)
        .map_err(|e| Fail::new(IOX_E_INVALID_ARGUMENT, format!("invalid type name {tname:?}: {e:?}")))?;
    let header = if o.header_size == 0 {
        TypeDetail::__internal_new_from_parts(TypeVariant::FixedSize, "()", 0, 1)
    } else {
        TypeDetail::__internal_new_from_parts(TypeVariant::FixedSize, HEADER_TYPE, o.header_size as usize, 8)
    };
    let header = header.map_err(|e| Fail::new(IOX_E_INTERNAL, format!("user header type: {e:?}")))?;
    Ok((payload, header))
}

/// Opens, creates or opens-or-creates a publish-subscribe service whose payload
/// has the given type details (Rust `[u8]` is dynamic "u8" 1/1). When an existing
/// service refuses, the error text says what it has (its types, or the iceoryx2
/// release that made it).
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
    on_cold(node, errbuf, errcap, |n| {
        let Some(o) = opts.as_ref() else { return invalid("null options") };
        need_out(out)?;
        let name = crate::guard::checked_service_name(name, name_len)?;
        let tname = text("type name", type_name, type_name_len)?;
        let dynamic = o.variant == 0;
        if o.size == 0 && !dynamic || o.alignment == 0 || !o.alignment.is_power_of_two() {
            return invalid("type size and alignment must be positive, alignment a power of two");
        }
        pubsub_bounds(n, o, mode)?;
        let (payload, header) = requested_types(o, tname)?;
        let mut b = n.node.service_builder(&name).publish_subscribe::<Bytes>().user_header::<Hdr>();
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
        let refused = |f: existing::Refusal| existing::explain_pubsub(n, &name, f, &payload, &header);
        let factory = match mode {
            OPEN => b.open().map_err(|e| refused(e.into()))?,
            CREATE => b.create().map_err(|e| refused(e.into()))?,
            OPEN_OR_CREATE => b.open_or_create().map_err(|e| refused(e.into()))?,
            _ => return invalid(format!("unknown open mode {mode}")),
        };
        let header = factory.static_config().message_type_details().user_header.size();
        put(out, into_handle(PubSubH { factory: Arc::new(factory), size: o.size.max(1) as usize, dynamic, header }));
        Ok(())
    })
}

/// Checks a publish-subscribe request before iceoryx2 sees it: counts of at
/// least 1 where the crate needs one (it would panic on 0), sizes that do not
/// overflow, and, when the service may be created, that the memory it needs
/// once every port it admits exists fits the machine.
fn pubsub_bounds(n: &NodeH, o: &PubSubOpts, mode: u32) -> Outcome {
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
            return invalid(format!("{name} {v} is outside {least}..={}", bounds::MAX_COUNT));
        }
    }
    if o.alignment > bounds::MAX_ALIGNMENT {
        return invalid(format!("payload alignment {} is over {}", o.alignment, bounds::MAX_ALIGNMENT));
    }
    if o.size > u32::MAX as u64 || o.header_size > u32::MAX as u64 {
        return invalid(format!("payload element size {} or header size {} is over {}", o.size, o.header_size, u32::MAX));
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
        .map_err(|m| Fail::new(IOX_E_OUT_OF_MEMORY, m))
}

drop_export!(iox_pubsub_drop, PubSubH);

/// Writes the number of publishers and subscribers connected to the service now.
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_counts(h: *mut PubSubH, publishers: *mut u64, subscribers: *mut u64) -> i32 {
    on(h, |s| {
        let d = s.factory.dynamic_config();
        put(publishers, d.number_of_publishers() as u64);
        put(subscribers, d.number_of_subscribers() as u64);
        Ok(())
    })
}

/// Writes the service's stored settings.
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_config(h: *mut PubSubH, out: *mut PubSubConfig) -> i32 {
    on(h, |s| {
        put(out, PubSubConfig::of(s.factory.static_config()));
        Ok(())
    })
}

/// Lists the ports of the service: `which` 0 = publishers, 1 = subscribers. Writes four
/// words per port (port id low, high, node id low, high) into `out`, at most `max`
/// ports, and returns how many ports exist (which may exceed `max`).
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_list(h: *mut PubSubH, which: u32, out: *mut u64, max: usize) -> i64 {
    on_hot(h, |s| {
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
    on(h, |s| {
        let st = {
            let _watch = crate::unfinished::watch();
            s.factory.try_cleanup_dead_nodes()
        };
        if st.cleanups + st.failed_cleanups > 0 {
            crate::unfinished::reap_known(); // for a hot call that waits on what they left
        }
        put(cleaned, st.cleanups as u64);
        put(failed, st.failed_cleanups as u64);
        Ok(())
    })
}
