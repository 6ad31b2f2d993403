//! Nodes: a process's participant in a namespace, and what the library does for
//! a namespace through one (cleanup of dead nodes, removal of stale services).

use std::mem::ManuallyDrop;

use iceoryx2::node::NodeView;
use iceoryx2::prelude::*;
use iceoryx2::service::messaging_pattern::MessagingPattern;
use iceoryx2::service::service_hash::ServiceHash;

use crate::guard::{drop_export, cold, into_handle, need_out, on, on_cold, put, text, Fail, Outcome};
use crate::status::*;
use crate::{bounds, layout, Svc};

/// A node handle.
pub struct NodeH {
    pub node: ManuallyDrop<Node<Svc>>,
}

impl NodeH {
    /// The handle of `node`.
    pub fn new(node: Node<Svc>) -> NodeH {
        NodeH { node: ManuallyDrop::new(node) }
    }
}

/// Dropping a node removes dead nodes' resources, which opens their services:
/// it is watched as cold calls are (see `unfinished`).
impl Drop for NodeH {
    fn drop(&mut self) {
        let _watch = crate::unfinished::watch();
        // SAFETY: dropped once, here, and not used after
        unsafe { ManuallyDrop::drop(&mut self.node) };
    }
}

/// `iox_node_create` flag: leave the namespace's node-counter segment writable by
/// every user, as iceoryx2 makes it, so that other users can create nodes.
pub const NODE_SHARED_NAMESPACE: u32 = 1 << 0;

/// `iox_node_create` flag: leave dead nodes' resources in place when the node
/// is created or dropped and when it opens a service (iceoryx2 removes them
/// then by default), so that a listing shows them and `iox_node_cleanup_dead`
/// reports them.
pub const NODE_NO_AUTO_CLEANUP: u32 = 1 << 1;

/// Creates a node with signal handling disabled. `prefix` and `root` (both may be
/// empty) select an isolated iceoryx2 configuration; `root` must end with '/'.
/// Unless `flags` has `NODE_SHARED_NAMESPACE`, the namespace's node-counter
/// segment is then restricted to its owner (see `layout::restrict_counter`).
#[no_mangle]
pub unsafe extern "C" fn iox_node_create(
    name: *const u8,
    name_len: usize,
    prefix: *const u8,
    prefix_len: usize,
    root: *const u8,
    root_len: usize,
    flags: u32,
    out: *mut *mut NodeH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    cold(errbuf, errcap, || {
        let name = text("node name", name, name_len)?;
        let prefix = text("prefix", prefix, prefix_len)?;
        let root = text("root folder", root, root_len)?;
        need_out(out)?;
        let mut config = isolated_config(prefix, root)?;
        if flags & NODE_NO_AUTO_CLEANUP != 0 {
            config.global.node.cleanup_dead_nodes_on_creation = false;
            config.global.node.cleanup_dead_nodes_on_destruction = false;
            config.global.service.cleanup_dead_nodes_on_open = false;
        }
        crate::unfinished::known(&config); // its creation is watched (see `unfinished`)
        let mut builder = NodeBuilder::new().signal_handling_mode(SignalHandlingMode::Disabled).config(&config);
        if !name.is_empty() {
            let n = NodeName::new(name).map_err(|e| Fail::new(IOX_E_INVALID_NAME, format!("invalid node name: {e:?}")))?;
            builder = builder.name(&n);
        }
        let node = builder.create::<Svc>().map_err(|e| {
            let mut f = Fail::from(e);
            if f.code == IOX_E_INTERNAL && !layout::root_writable(&config) {
                f.code = IOX_E_PERMISSION;
                f.text += "; the namespace's root folder is not writable by this user";
            } else if f.code == IOX_E_INTERNAL && !layout::counter_writable(&config) {
                f.code = IOX_E_PERMISSION;
                f.text += "; the namespace's node counter belongs to another user (see WithSharedNamespace)";
            }
            f
        })?;
        if flags & NODE_SHARED_NAMESPACE == 0 {
            layout::restrict_counter(&config);
        }
        if flags & NODE_NO_AUTO_CLEANUP == 0 {
            crate::waitword::remove_dead(&config); // as iceoryx2 does with dead nodes' resources
        }
        put(out, into_handle(NodeH::new(node)));
        Ok(())
    })
}

/// The default configuration with `prefix` and `root` (when not empty), refused
/// when a listener's socket path could not fit.
pub fn isolated_config(prefix: &str, root: &str) -> Outcome<Config> {
    let mut config = Config::default();
    // A listener's socket is <root><prefix><id><suffix>: keep it within the
    // unix socket path limit, or creating a listener fails later.
    let root_len = if root.is_empty() { config.global.root_path().len() } else { root.len() };
    let prefix_len = if prefix.is_empty() { config.global.prefix.len() } else { prefix.len() };
    let suffix_len = config.global.service.event_connection_suffix.len();
    if root_len + prefix_len + bounds::LISTENER_ID_DIGITS + suffix_len > bounds::SOCKET_PATH_MAX {
        let room = bounds::SOCKET_PATH_MAX - bounds::LISTENER_ID_DIGITS - suffix_len;
        return Err(Fail::new(
            IOX_E_INVALID_ARGUMENT,
            format!(
                "isolation root ({root_len} bytes) and prefix ({prefix_len} bytes) together may have at most {room} bytes: a listener's socket path (root + prefix + {} digit id + {:?}) must fit in {} bytes",
                bounds::LISTENER_ID_DIGITS,
                config.global.service.event_connection_suffix.to_string(),
                bounds::SOCKET_PATH_MAX + 1
            ),
        ));
    }
    if !prefix.is_empty() {
        config.global.prefix = FileName::new(prefix.as_bytes())
            .map_err(|e| Fail::new(IOX_E_INVALID_NAME, format!("invalid config prefix: {e:?}")))?;
    }
    if !root.is_empty() {
        let p = Path::new(root.as_bytes()).map_err(|e| Fail::new(IOX_E_INVALID_NAME, format!("invalid root path: {e:?}")))?;
        config.global.set_root_path(&p);
    }
    Ok(config)
}

drop_export!(iox_node_drop, NodeH);

/// Messaging pattern of `iox_service_remove_stale`: 0 publish-subscribe, 1 event,
/// 2 request-response.
fn pattern_arg(pattern: u32) -> Outcome<MessagingPattern> {
    match pattern {
        0 => Ok(MessagingPattern::PublishSubscribe),
        1 => Ok(MessagingPattern::Event),
        2 => Ok(MessagingPattern::RequestResponse),
        _ => Err(Fail::new(IOX_E_INVALID_ARGUMENT, format!("unknown messaging pattern {pattern}"))),
    }
}

/// Removes the service `name` (`pattern` 0 publish-subscribe, 1 event,
/// 2 request-response) when a process died while it created or removed it, so
/// that it can be neither opened nor created. It refuses with `IOX_E_BUSY` while
/// a live node of the namespace holds the service. Sets `removed` to 1 when it
/// removed something.
///
/// A node holds a service from before it writes the service's static
/// configuration until after it has left it: iceoryx2 marks this with a service
/// tag among the node's files. Who holds a service that is half made is not in
/// the service itself (`Service::details` finds no service while its static
/// configuration is unfinished), so the check looks for the tag of every live
/// node (`layout::holds_service`). A service whose creator died before it
/// finished its static configuration is handled too: the crate's forced
/// removal reads it as absent, so the unfinished static configuration is
/// removed here, and the name can be created again.
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
    on_cold(h, errbuf, errcap, |n| {
        let name = crate::guard::checked_service_name(name, name_len)?;
        let pattern = pattern_arg(pattern)?;
        let hash = ServiceHash::new::<<Svc as iceoryx2::service::Service>::ServiceNameHasher>(&name, pattern);
        let config = n.node.config();
        let mut held = false;
        Node::<Svc>::list(config, |state| {
            match state {
                NodeState::Alive(view) => held = layout::holds_service(config, view.id(), &hash),
                // A dead node's tags go with its cleanup; a node this process
                // cannot see, or one half made, holds nothing it could use.
                NodeState::Dead(_) | NodeState::Inaccessible(_) | NodeState::Undefined(_) => {}
            }
            if held {
                CallbackProgression::Stop
            } else {
                CallbackProgression::Continue
            }
        })?;
        if held {
            return Err(Fail::new(IOX_E_BUSY, "a live node holds the service"));
        }
        let mut r = n.node.force_remove_service(&name, pattern)?;
        if !r {
            r = layout::remove_unfinished_static_config(config, &hash)?;
        }
        put(removed, r as u64);
        Ok(())
    })
}

/// Removes the resources of dead nodes that share this node's configuration.
#[no_mangle]
pub unsafe extern "C" fn iox_node_cleanup_dead(h: *mut NodeH, cleaned: *mut u64, failed: *mut u64) -> i32 {
    on(h, |n| {
        let state = {
            let _watch = crate::unfinished::watch();
            n.node.try_cleanup_dead_nodes()
        };
        if state.cleanups + state.failed_cleanups > 0 {
            crate::unfinished::reap(n.node.config()); // for a hot call that waits on what they left
        }
        let words = crate::waitword::remove_dead(n.node.config());
        put(cleaned, state.cleanups as u64 + words);
        put(failed, state.failed_cleanups as u64);
        Ok(())
    })
}

/// Writes the node's unique id (128 bits, low then high).
#[no_mangle]
pub unsafe extern "C" fn iox_node_id(h: *mut NodeH, lo: *mut u64, hi: *mut u64) -> i32 {
    on(h, |n| {
        let v = n.node.id().value();
        put(lo, v as u64);
        put(hi, (v >> 64) as u64);
        Ok(())
    })
}

/// Decodes a node id (low, high) into the id of the process that created the
/// node and the CLOCK_MONOTONIC time (ns) at which it did, so that the caller can
/// wait for that process to exit and tell it from a later process that reuses its
/// pid. Returns `IOX_E_INVALID_ARGUMENT` when the id carries no such details.
#[no_mangle]
pub unsafe extern "C" fn iox_node_id_details(lo: u64, hi: u64, pid: *mut u64, created_ns: *mut u64) -> i32 {
    crate::guard::guard(|| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use iceoryx2::service::Service;
    use iceoryx2_cal::named_concept::{NamedConceptBuilder, NamedConceptConfiguration, NamedConceptMgmt};
    use iceoryx2_cal::static_storage::StaticStorageBuilder;

    type Store = <Svc as Service>::StaticStorage;
    type StoreConfig = <Store as NamedConceptMgmt>::Configuration;

    fn node(config: &Config) -> *mut NodeH {
        let node = NodeBuilder::new().signal_handling_mode(SignalHandlingMode::Disabled).config(config).create::<Svc>().unwrap();
        into_handle(NodeH::new(node))
    }

    fn remove_stale(h: *mut NodeH, name: &str) -> (i32, u64, String) {
        let mut removed = 0u64;
        let mut buf = [0u8; 256];
        let st = unsafe {
            iox_service_remove_stale(h, name.as_ptr(), name.len(), 1, &mut removed, buf.as_mut_ptr(), buf.len())
        };
        let text = String::from_utf8_lossy(&buf).trim_end_matches('\0').to_string();
        (st, removed, text)
    }

    /// A file of `dir` as the crate's static storage writes it, left unfinished
    /// (as by a process that died while writing it).
    fn unfinished(dir: &Path, prefix: &FileName, suffix: &FileName, name: &str) -> (FileName, StoreConfig) {
        let cfg = StoreConfig::default().prefix(prefix).suffix(suffix).path_hint(dir);
        let name = FileName::new(name.as_bytes()).unwrap();
        let locked = <<Store as iceoryx2_cal::static_storage::StaticStorage>::Builder as NamedConceptBuilder<Store>>::new(&name)
            .config(&cfg)
            .has_ownership(false)
            .create_locked()
            .unwrap();
        drop(locked);
        (name, cfg)
    }

    #[test]
    fn a_service_whose_creator_died_is_removed_unless_a_live_node_holds_it() {
        let id = std::process::id();
        let (prefix, root) = (format!("nn{id}_"), format!("/tmp/iox-native-test-{id}-n/"));
        let config = isolated_config(&prefix, &root).unwrap();
        let (a, b) = (node(&config), node(&config));
        let name = ServiceName::new("half-made").unwrap();
        let hash = ServiceHash::new::<<Svc as Service>::ServiceNameHasher>(&name, MessagingPattern::Event);

        // The creator began the static configuration and never finished it.
        let mut services = *config.global.root_path();
        services.add_path_entry(&config.global.service.directory).unwrap();
        let g = &config.global;
        unfinished(&services, &g.prefix, &g.service.static_config_storage_suffix, hash.as_str());
        let opened = unsafe { &(*b).node }.service_builder(&name).event().open_or_create();
        assert!(opened.is_err(), "the name can be neither opened nor created");

        // While a live node holds the service (its creator, say), it stays.
        let mut node_dir = g.node_dir();
        node_dir.add_path_entry(&FileName::new(unsafe { &(*a).node }.id().value().to_string().as_bytes()).unwrap().into()).unwrap();
        let (tag, tag_cfg) = unfinished(&node_dir, &g.prefix, &g.node.service_tag_suffix, hash.as_str());
        assert_eq!(remove_stale(b, "half-made"), (IOX_E_BUSY, 0, "a live node holds the service".to_string()));

        // Once nothing live holds it, it goes, and the name works again.
        assert!(unsafe { <Store as NamedConceptMgmt>::remove_cfg(&tag, &tag_cfg) }.unwrap());
        assert_eq!(remove_stale(b, "half-made"), (IOX_OK, 1, String::new()));
        let svc = unsafe { &(*b).node }.service_builder(&name).event().open_or_create().expect("created again");
        assert_eq!(remove_stale(b, "half-made").0, IOX_E_BUSY, "now this node holds it");
        drop(svc);
        assert_eq!(remove_stale(b, "half-made"), (IOX_OK, 0, String::new()), "nothing left to remove");

        unsafe {
            iox_node_drop(a);
            iox_node_drop(b);
        }
        let (p, r) = (prefix.as_bytes(), root.as_bytes());
        let mut buf = [0u8; 64];
        let st = unsafe { crate::layout::iox_remove_isolation(p.as_ptr(), p.len(), r.as_ptr(), r.len(), buf.as_mut_ptr(), buf.len()) };
        assert_eq!(st, IOX_OK);
    }
}
