//! Event services: opening one with its settings, and what it tells about itself.

use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::event as event_factory;
use iceoryx2::service::static_config::event::StaticConfig as EventStatic;

use crate::guard::{drop_export, into_handle, invalid, need_out, on, on_cold, put, Fail, Outcome};
use crate::pubsub::{OPEN, OPEN_OR_CREATE};
use crate::status::*;
use crate::{bounds, existing, NodeH, Svc};

pub const EV_SET_MAX_NOTIFIERS: u64 = 1 << 0;
pub const EV_SET_MAX_LISTENERS: u64 = 1 << 1;
pub const EV_SET_MAX_NODES: u64 = 1 << 2;
pub const EV_SET_MAX_EVENT_ID: u64 = 1 << 3;
pub const EV_SET_CREATED_EVENT: u64 = 1 << 4;
pub const EV_SET_DROPPED_EVENT: u64 = 1 << 5;
pub const EV_SET_DEAD_EVENT: u64 = 1 << 6;

/// Event settings; a field counts only when its bit is in `set`.
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

/// The settings an event service actually has. The notifier events and the
/// deadline count only when their bit (`EV_SET_*_EVENT`, `EV_HAS_DEADLINE`) is
/// in `set`.
#[repr(C)]
pub struct EventConfig {
    pub set: u64,
    pub max_notifiers: u64,
    pub max_listeners: u64,
    pub max_nodes: u64,
    pub max_event_id: u64,
    pub created_event: u64,
    pub dropped_event: u64,
    pub dead_event: u64,
    pub deadline_ns: u64,
}

/// `EventConfig::set` bit: the service has a deadline.
pub const EV_HAS_DEADLINE: u64 = 1 << 7;

impl EventConfig {
    /// The settings of the static configuration `c`.
    pub fn of(c: &EventStatic) -> EventConfig {
        let mut out = EventConfig {
            set: EV_SET_MAX_NOTIFIERS | EV_SET_MAX_LISTENERS | EV_SET_MAX_NODES | EV_SET_MAX_EVENT_ID,
            max_notifiers: c.max_notifiers() as u64,
            max_listeners: c.max_listeners() as u64,
            max_nodes: c.max_nodes() as u64,
            max_event_id: c.event_id_max_value() as u64,
            created_event: 0,
            dropped_event: 0,
            dead_event: 0,
            deadline_ns: 0,
        };
        for (bit, id, field) in [
            (EV_SET_CREATED_EVENT, c.notifier_created_event(), &mut out.created_event),
            (EV_SET_DROPPED_EVENT, c.notifier_dropped_event(), &mut out.dropped_event),
            (EV_SET_DEAD_EVENT, c.notifier_dead_event(), &mut out.dead_event),
        ] {
            if let Some(id) = id {
                *field = id.as_value() as u64;
                out.set |= bit;
            }
        }
        if let Some(d) = c.deadline() {
            out.deadline_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            out.set |= EV_HAS_DEADLINE;
        }
        out
    }
}

/// An open event service.
pub struct EventH {
    pub factory: event_factory::PortFactory<Svc>,
}

/// Opens, creates or opens-or-creates the event service `name`.
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
    on_cold(node, errbuf, errcap, |n| {
        let Some(o) = opts.as_ref() else { return invalid("null options") };
        need_out(out)?;
        let name = crate::guard::checked_service_name(name, name_len)?;
        event_bounds(n, o, mode)?;
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
        let refused = |r: existing::Refusal| existing::explain_event(n, &name, r);
        let factory = match mode {
            OPEN => b.open().map_err(|e| refused(e.into()))?,
            crate::pubsub::CREATE => b.create().map_err(|e| refused(e.into()))?,
            OPEN_OR_CREATE => b.open_or_create().map_err(|e| refused(e.into()))?,
            _ => return invalid(format!("unknown open mode {mode}")),
        };
        put(out, into_handle(EventH { factory }));
        Ok(())
    })
}

/// Checks an event service request before iceoryx2 sees it: counts of at least
/// 1, and, when the service may be created, that the listeners' event-id sets
/// and the notifiers' connection tables fit the machine.
fn event_bounds(n: &NodeH, o: &EventOpts, mode: u32) -> Outcome {
    let set = |bit: u64| o.set & bit != 0;
    for (bit, name, v) in [
        (EV_SET_MAX_NOTIFIERS, "MaxNotifiers", o.max_notifiers),
        (EV_SET_MAX_LISTENERS, "MaxListeners", o.max_listeners),
        (EV_SET_MAX_NODES, "MaxNodes", o.max_nodes),
    ] {
        if set(bit) && (v < 1 || v > bounds::MAX_COUNT) {
            return invalid(format!("{name} {v} is outside 1..={}", bounds::MAX_COUNT));
        }
    }
    let d = &n.node.config().defaults.event;
    let pick = |bit: u64, v: u64, default: usize| if set(bit) { v } else { default as u64 };
    let max_id = pick(EV_SET_MAX_EVENT_ID, o.max_event_id, d.event_id_max_value);
    if max_id >= usize::MAX as u64 / 8 {
        return invalid(format!("MaxEventID {max_id} overflows the size of a listener's event-id set"));
    }
    if mode == OPEN {
        return Ok(());
    }
    let listeners = pick(EV_SET_MAX_LISTENERS, o.max_listeners, d.max_listeners).max(1);
    let notifiers = pick(EV_SET_MAX_NOTIFIERS, o.max_notifiers, d.max_notifiers).max(1);
    let nodes = pick(EV_SET_MAX_NODES, o.max_nodes, d.max_nodes).max(1);
    let given = [set(EV_SET_MAX_LISTENERS), set(EV_SET_MAX_NOTIFIERS), set(EV_SET_MAX_EVENT_ID)];
    bounds::check_event(listeners, notifiers, nodes, max_id, given)
        .map_err(|(oom, m)| Fail::new(if oom { IOX_E_OUT_OF_MEMORY } else { IOX_E_INVALID_ARGUMENT }, m))
}

drop_export!(iox_event_drop, EventH);

/// Writes the number of notifiers and listeners and the largest event id.
#[no_mangle]
pub unsafe extern "C" fn iox_event_info(
    h: *mut EventH,
    notifiers: *mut u64,
    listeners: *mut u64,
    max_event_id: *mut u64,
) -> i32 {
    on(h, |e| {
        let d = e.factory.dynamic_config();
        put(notifiers, d.number_of_notifiers() as u64);
        put(listeners, d.number_of_listeners() as u64);
        put(max_event_id, e.factory.static_config().event_id_max_value() as u64);
        Ok(())
    })
}

/// Writes the service's stored settings.
#[no_mangle]
pub unsafe extern "C" fn iox_event_config(h: *mut EventH, out: *mut EventConfig) -> i32 {
    on(h, |e| {
        put(out, EventConfig::of(e.factory.static_config()));
        Ok(())
    })
}
