//! Where iceoryx2 keeps a namespace's resources, and what the library does with
//! them directly: the node-counter segment, the service tags of nodes, the
//! static configurations of services, the shared-memory objects and the root
//! folder. The names follow the crate's own layout (iceoryx2 0.10.0,
//! `service/config_scheme.rs`, `node/global_management_segment.rs`), built from
//! the public `Config` fields so that a custom configuration is followed too.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use iceoryx2::config::Config;
use iceoryx2::identifiers::UniqueNodeId;
use iceoryx2::prelude::{FileName, Path, SemanticString};
use iceoryx2::service::service_hash::ServiceHash;
use iceoryx2::service::Service;
use iceoryx2_bb_elementary::package_version::PackageVersion;
use iceoryx2_bb_posix::config::SHARED_MEMORY_DIRECTORY;
use iceoryx2_bb_posix::shared_memory::SharedMemory;
use iceoryx2_cal::hash::{sha1::Sha1, Hash};
use iceoryx2_cal::named_concept::{
    NamedConceptBuilder, NamedConceptConfiguration, NamedConceptDoesExistError, NamedConceptMgmt,
};
use iceoryx2_cal::static_storage::{StaticStorage, StaticStorageBuilder, StaticStorageView};

use crate::guard::{cold, text, Fail, Outcome};
use crate::status::*;
use crate::Svc;

type StaticStore = <Svc as Service>::StaticStorage;
type StaticStoreConfig = <StaticStore as NamedConceptMgmt>::Configuration;

/// The folder of the POSIX shared-memory objects (`/dev/shm/` on Linux).
pub fn shm_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(SHARED_MEMORY_DIRECTORY.to_string())
}

fn path_of(p: &Path) -> std::path::PathBuf {
    std::path::PathBuf::from(p.to_string())
}

/// The namespace's node-counter segment(s) in the shared-memory folder: named
/// `<prefix><type hash>_node.<major>_<minor>_<patch><global_mgmt_suffix>`, the
/// type hash being a SHA-1 of the counter's Rust type name in the form the crate
/// prints it (as long as any such hash).
fn counter_segments(config: &Config) -> Vec<String> {
    let prefix = config.global.prefix.to_string();
    let v = PackageVersion::get();
    let suffix = format!("_node.{}_{}_{}{}", v.major(), v.minor(), v.patch(), config.global.node.global_mgmt_suffix);
    let hash_len = Sha1::new(b"").value().as_base64url().len();
    SharedMemory::list()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| {
            n.len() == prefix.len() + hash_len + suffix.len()
                && n.starts_with(&prefix)
                && n.ends_with(&suffix)
                && n[prefix.len()..prefix.len() + hash_len]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .collect()
}

/// Takes group and others' access away from the namespace's node-counter
/// segment when this user owns it. iceoryx2 creates it writable by everyone so
/// that any user can create nodes; a namespace that is not shared on purpose
/// should not let other users write into it. Best effort: a segment that is
/// gone or not ours is left alone.
pub fn restrict_counter(config: &Config) {
    let euid = unsafe { libc::geteuid() };
    for name in counter_segments(config) {
        let path = shm_dir().join(name);
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 && meta.uid() == euid {
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o700));
        }
    }
}

/// Whether this user may read and write every node-counter segment of the
/// namespace there is (iceoryx2 needs both to give a node its id).
pub fn counter_writable(config: &Config) -> bool {
    counter_segments(config).into_iter().all(|name| {
        let Ok(c) = std::ffi::CString::new(shm_dir().join(name).as_os_str().as_encoded_bytes()) else { return true };
        (unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) }) == 0
    })
}

/// Whether this user may write the namespace's root folder, or the nearest
/// existing folder above it where iceoryx2 would create it.
pub fn root_writable(config: &Config) -> bool {
    let root = path_of(config.global.root_path());
    let mut dir: &std::path::Path = &root;
    loop {
        if dir.exists() {
            let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return true };
            return unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => return true,
        }
    }
}

/// The configuration of the static storage of a node's service tags: one tag per
/// service the node holds, in the node's folder (`config_scheme::service_tag_config`).
fn service_tag_config(config: &Config, node: &UniqueNodeId) -> Option<StaticStoreConfig> {
    let mut dir = config.global.node_dir();
    dir.add_path_entry(&FileName::new(node.value().to_string().as_bytes()).ok()?.into()).ok()?;
    Some(
        StaticStoreConfig::default()
            .prefix(&config.global.prefix)
            .suffix(&config.global.node.service_tag_suffix)
            .path_hint(&dir),
    )
}

/// Whether node `node` holds the service `hash`: its service tag exists. A tag
/// that cannot be checked counts as held, so that nothing live is removed.
pub fn holds_service(config: &Config, node: &UniqueNodeId, hash: &ServiceHash) -> bool {
    let (Some(cfg), Ok(name)) = (service_tag_config(config, node), FileName::new(hash.as_str().as_bytes())) else {
        return true;
    };
    <StaticStore as NamedConceptMgmt>::does_exist_cfg(&name, &cfg).unwrap_or(true)
}

/// The configuration of the static storage of service configurations: one per
/// service, in `<root>/<service dir>` (`config_scheme::static_config_storage_config`).
fn static_config_storage(config: &Config) -> Option<StaticStoreConfig> {
    let mut dir = *config.global.root_path();
    dir.add_path_entry(&config.global.service.directory).ok()?;
    Some(
        StaticStoreConfig::default()
            .prefix(&config.global.prefix)
            .suffix(&config.global.service.static_config_storage_suffix)
            .path_hint(&dir),
    )
}

/// Removes the static configuration of the service `hash` when it was never
/// finished: its creator died after it began writing it. iceoryx2 reads such a
/// service as still being created for ever, and `Node::force_remove_service`
/// reads it as absent and leaves it. Only for a service no live node holds.
pub fn remove_unfinished_static_config(config: &Config, hash: &ServiceHash) -> Outcome<bool> {
    let (Some(cfg), Ok(name)) = (static_config_storage(config), FileName::new(hash.as_str().as_bytes())) else {
        return Ok(false);
    };
    match <StaticStore as NamedConceptMgmt>::does_exist_cfg(&name, &cfg) {
        Err(NamedConceptDoesExistError::UnderlyingResourcesBeingSetUp) => {
            Ok(unsafe { <StaticStore as NamedConceptMgmt>::remove_cfg(&name, &cfg) }?)
        }
        Ok(_) | Err(_) => Ok(false),
    }
}

/// The stored bytes of the static configuration named `name`, if it exists and
/// is complete.
fn read_static_config(cfg: &StaticStoreConfig, name: &FileName) -> Option<Vec<u8>> {
    let storage = <<StaticStore as StaticStorage>::Builder as NamedConceptBuilder<StaticStore>>::new(name)
        .config(cfg)
        .has_ownership(false)
        .open(std::time::Duration::ZERO)
        .ok()?;
    let len = usize::try_from(storage.len()).ok().filter(|&n| n <= 1 << 20)?;
    let mut content = vec![0u8; len];
    storage.read(&mut content).ok()?;
    Some(content)
}

/// The stored static configuration of the service `hash`, and those of every
/// other service of the namespace after it (an older release may have named the
/// same service by another hash), for `pick` to choose from. Returns what `pick`
/// chose first.
pub fn find_static_config<T>(config: &Config, hash: &ServiceHash, mut pick: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
    let cfg = static_config_storage(config)?;
    let own = FileName::new(hash.as_str().as_bytes()).ok()?;
    if let Some(found) = read_static_config(&cfg, &own).and_then(|c| pick(&c)) {
        return Some(found);
    }
    let names = <StaticStore as NamedConceptMgmt>::list_cfg(&cfg).ok()?;
    names.iter().filter(|n| **n != own).find_map(|n| read_static_config(&cfg, n).and_then(|c| pick(&c)))
}

/// Deletes every iceoryx2 resource of the namespace that `prefix` and `root`
/// select: the shared-memory objects whose names start with `prefix` and the
/// root folder. iceoryx2 keeps a small node-counter segment per namespace on
/// purpose; this is for when no process uses the namespace any more.
#[no_mangle]
pub unsafe extern "C" fn iox_remove_isolation(
    prefix: *const u8,
    prefix_len: usize,
    root: *const u8,
    root_len: usize,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    cold(errbuf, errcap, || {
        let prefix = text("prefix", prefix, prefix_len)?;
        let root = text("root folder", root, root_len)?;
        let root_path = std::path::Path::new(root);
        let bad_root = !root_path.is_absolute() || root_path.parent().is_none();
        if prefix.is_empty() || prefix.contains('/') || bad_root {
            return Err(Fail::new(IOX_E_INVALID_ARGUMENT, "needs a prefix and an absolute root folder other than /"));
        }
        let mut first: Option<String> = None;
        for name in SharedMemory::list() {
            if name.to_string().starts_with(prefix) {
                if let Err(e) = SharedMemory::remove(&name) {
                    first.get_or_insert(format!("removing shared memory {name}: {e:?}"));
                }
            }
        }
        match std::fs::remove_dir_all(root_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first.get_or_insert(format!("removing {root}: {e}"));
            }
        }
        match first {
            None => Ok(()),
            Some(t) => Err(Fail::new(IOX_E_INTERNAL, t)),
        }
    })
}

/// The size in bytes of the file system that holds shared-memory objects (0 when
/// unknown): no message can be larger, and asking iceoryx2 for one leaves a
/// half-made data segment behind.
#[no_mangle]
pub extern "C" fn iox_shm_capacity() -> u64 {
    let mut cap = 0;
    crate::guard::guard(|| {
        let Ok(c) = std::ffi::CString::new(SHARED_MEMORY_DIRECTORY.to_string()) else { return IOX_E_INTERNAL };
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0 {
            cap = (s.f_blocks as u64).saturating_mul(s.f_frsize as u64);
        }
        IOX_OK
    });
    cap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::isolated_config;
    use iceoryx2::prelude::*;

    fn namespace(tag: &str) -> (String, String) {
        let id = std::process::id();
        (format!("nl{id}{tag}_"), format!("/tmp/iox-native-test-{id}-{tag}/"))
    }

    fn remove(prefix: &str, root: &str) -> i32 {
        let mut buf = [0u8; 256];
        unsafe { iox_remove_isolation(prefix.as_ptr(), prefix.len(), root.as_ptr(), root.len(), buf.as_mut_ptr(), buf.len()) }
    }

    #[test]
    fn the_counter_segment_is_found_and_restricted() {
        let (prefix, root) = namespace("c");
        let config = isolated_config(&prefix, &root).unwrap();
        let node = NodeBuilder::new().signal_handling_mode(SignalHandlingMode::Disabled).config(&config).create::<Svc>().unwrap();
        let found = counter_segments(&config);
        assert_eq!(found.len(), 1, "one counter segment per namespace: {found:?}");
        let path = shm_dir().join(&found[0]);
        let mode = || std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_ne!(mode() & 0o077, 0, "iceoryx2 makes it accessible to every user");
        restrict_counter(&config);
        assert_eq!(mode() & 0o077, 0, "only the owner keeps access");
        drop(node);
        assert_eq!(remove(&prefix, &root), IOX_OK);
        assert!(counter_segments(&config).is_empty(), "remove_isolation removes it");
        assert!(!std::path::Path::new(&root).exists());
    }

    #[test]
    fn remove_isolation_refuses_what_is_not_a_namespace() {
        assert_eq!(remove("", "/tmp/x/"), IOX_E_INVALID_ARGUMENT);
        assert_eq!(remove("a/b", "/tmp/x/"), IOX_E_INVALID_ARGUMENT);
        assert_eq!(remove("p_", "relative/"), IOX_E_INVALID_ARGUMENT);
        assert_eq!(remove("p_", "/"), IOX_E_INVALID_ARGUMENT);
    }

    #[test]
    fn a_live_holder_is_found_by_its_service_tag() {
        let (prefix, root) = namespace("t");
        let config = isolated_config(&prefix, &root).unwrap();
        let node = NodeBuilder::new().signal_handling_mode(SignalHandlingMode::Disabled).config(&config).create::<Svc>().unwrap();
        let name = ServiceName::new("held").unwrap();
        let hash = ServiceHash::new::<<Svc as Service>::ServiceNameHasher>(&name, MessagingPattern::Event);
        assert!(!holds_service(&config, node.id(), &hash));
        let svc = node.service_builder(&name).event().create().unwrap();
        assert!(holds_service(&config, node.id(), &hash));
        let other = ServiceHash::new::<<Svc as Service>::ServiceNameHasher>(&name, MessagingPattern::PublishSubscribe);
        assert!(!holds_service(&config, node.id(), &other), "the tag is per service and pattern");
        drop(svc);
        assert!(!holds_service(&config, node.id(), &hash));
        drop(node);
        assert_eq!(remove(&prefix, &root), IOX_OK);
    }
}
