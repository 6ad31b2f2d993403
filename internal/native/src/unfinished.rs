//! Shared-memory objects whose creator died before it gave them a size.
//!
//! iceoryx2 (0.10.0) makes a shared-memory object in two steps: `shm_open`
//! creates it with size zero, and `ftruncate` gives it its size right after.
//! A process that dies between the two leaves an object of size zero behind,
//! and the crate's dynamic storage (`posix_shared_memory::Builder::open`) waits
//! for such an object to get a size without any bound. A service's dynamic
//! configuration and the connections between ports are dynamic storages, so
//! every later open of that service or connection would hang: creating a node
//! (which removes dead nodes' resources), opening the service, listing it.
//!
//! A live creator holds the object open between the two steps, a matter of
//! microseconds. An object of size zero that no process holds open is thus
//! unfinished for good, and [`reap`] removes it. Removing it frees a thread
//! that waits in the crate's open of it: the crate's next look finds no
//! object, and it creates the object anew or fails.
//!
//! A look costs a listing of the shared-memory folder, too much for every
//! call. So every cold call (node, service and port creation, listing,
//! removal of dead nodes' resources) runs under a [`watch`], and a watchdog
//! thread reaps the namespaces of this process's nodes whenever a watched call
//! has taken longer than [`PATIENCE`]: a call stuck on such an object goes on
//! that much later. The watchdog sleeps while no call is watched. A removal of
//! dead nodes' resources that found some also reaps at once, for a thread that
//! waits on such an object in a hot call, which is not watched.

use std::collections::HashSet;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iceoryx2::config::Config;
use crate::layout::shm_dir;

/// How often an object that some process holds open is looked at again: its
/// creator gives it a size in that time, or it was only a reader's look.
const ROUNDS: usize = 3;
const ROUND_PAUSE: Duration = Duration::from_millis(1);

/// Where the open files of some processes of an object's owner cannot be read
/// (a process that is not privileged may not read those of a process that
/// changed its privileges), the object counts as unfinished once it is this
/// old: no creator takes that long between two system calls. [`reap`] waits
/// for a younger one to reach that age.
const UNSEEN_AGE: Duration = Duration::from_secs(1);

/// How long a watched call runs before the watchdog reaps (see the module's
/// documentation): longer than most cold calls take, and a reap removes only
/// unfinished objects, so a slow call that waits for nothing loses nothing.
pub const PATIENCE: Duration = Duration::from_millis(50);

/// The prefixes of the namespaces of this process's nodes.
static NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds the namespace of `config` to those the watchdog reaps.
pub fn known(config: &Config) {
    let prefix = config.global.prefix.to_string();
    let mut v = NAMESPACES.lock().unwrap_or_else(|p| p.into_inner());
    if !v.contains(&prefix) {
        v.push(prefix);
    }
}

/// Reaps the namespaces of this process's nodes.
pub fn reap_known() -> u64 {
    let prefixes = NAMESPACES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    prefixes.iter().map(|p| reap_prefix(p)).sum()
}

/// The calls being watched (an id and when the call started, or when the
/// watchdog last reaped for it), and whether the watchdog runs.
struct Watched {
    calls: Vec<(u64, Instant)>,
    next: u64,
    started: bool,
}

static WATCHED: Mutex<Watched> = Mutex::new(Watched { calls: Vec::new(), next: 0, started: false });
static WAKE: Condvar = Condvar::new();

/// A watched call, from [`watch`] until it is dropped.
pub struct Watch(u64);

/// Watches the calling thread's call until the returned value is dropped.
pub fn watch() -> Watch {
    let mut w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    if !w.started {
        w.started = std::thread::Builder::new().name("iox-unfinished".into()).spawn(watchdog).is_ok();
    }
    let id = w.next;
    w.next += 1;
    let first = w.calls.is_empty();
    w.calls.push((id, Instant::now()));
    drop(w);
    if first {
        WAKE.notify_one(); // the watchdog sleeps without a deadline while nothing is watched
    }
    Watch(id)
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
        w.calls.retain(|c| c.0 != self.0);
    }
}

/// The watchdog thread: reaps whenever a watched call has run for PATIENCE.
fn watchdog() {
    let mut w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        let Some(oldest) = w.calls.iter().map(|c| c.1).min() else {
            w = WAKE.wait(w).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let waited = now.duration_since(oldest);
        if waited < PATIENCE {
            w = WAKE.wait_timeout(w, PATIENCE - waited).unwrap_or_else(|p| p.into_inner()).0;
            continue;
        }
        for c in w.calls.iter_mut() {
            if now.duration_since(c.1) >= PATIENCE {
                c.1 = now; // another PATIENCE before the next reap for it
            }
        }
        drop(w);
        reap_known();
        w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    }
}

/// An object of size zero in the shared-memory folder.
struct Empty {
    path: PathBuf,
    ino: u64,
    owner: u32,
    born: Duration, // its change time, since the epoch
}

/// Removes the objects of the namespace of `config` that have size zero and
/// that no process holds open. Returns how many it removed.
pub fn reap(config: &Config) -> u64 {
    reap_prefix(&config.global.prefix.to_string())
}

/// [`reap`] for the namespace whose objects' names start with `prefix`.
pub fn reap_prefix(prefix: &str) -> u64 {
    reap_with(prefix, open_objects)
}

/// [`reap_prefix`] with `look` telling which objects processes hold open.
fn reap_with(prefix: &str, look: impl Fn(&std::path::Path) -> OpenObjects) -> u64 {
    let dir = shm_dir();
    let mut left = empty_objects(&dir, prefix);
    let mut removed = 0;
    for _ in 0..ROUNDS {
        if left.is_empty() {
            break;
        }
        let open = look(&dir);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut pause = Duration::ZERO;
        left.retain(|o| {
            if open.held.contains(&o.path) {
                pause = pause.max(ROUND_PAUSE); // a creator at work, or a reader's look
                return true;
            }
            let age = now.saturating_sub(o.born);
            if open.unseen(o.owner) && age < UNSEEN_AGE {
                pause = pause.max(UNSEEN_AGE - age); // its creator may be a process not seen
                return true;
            }
            if still_empty(o) && std::fs::remove_file(&o.path).is_ok() {
                removed += 1;
            }
            false
        });
        if !left.is_empty() {
            std::thread::sleep(pause);
        }
    }
    removed
}

/// The inode numbers of objects seen with a size: they keep it.
static SIZED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

/// The namespace's objects of size zero.
fn empty_objects(dir: &std::path::Path, prefix: &str) -> Vec<Empty> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut guard = SIZED.lock().unwrap_or_else(|p| p.into_inner());
    let sized = guard.get_or_insert_with(HashSet::new);
    let mut listed = 0;
    let mut empty = Vec::new();
    for e in entries.flatten() {
        listed += 1;
        if sized.contains(&e.ino()) || !e.file_name().as_encoded_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        if !md.is_file() {
            continue;
        }
        if md.len() != 0 {
            sized.insert(md.ino());
            continue;
        }
        let born = Duration::new(md.ctime().max(0) as u64, md.ctime_nsec().clamp(0, 999_999_999) as u32);
        empty.push(Empty { path: e.path(), ino: md.ino(), owner: md.uid(), born });
    }
    if sized.len() > 2 * listed + 1024 {
        sized.clear(); // mostly objects since removed: learn the others again
    }
    empty
}

/// Whether `o` is still the same object, of size zero.
fn still_empty(o: &Empty) -> bool {
    matches!(std::fs::metadata(&o.path), Ok(md) if md.ino() == o.ino && md.len() == 0)
}

/// The objects of the shared-memory folder that some process holds open, and
/// the users some of whose processes' open files could not be read.
struct OpenObjects {
    held: HashSet<PathBuf>,
    unseen: HashSet<u32>,
    blind: bool, // no process could be looked at
}

impl OpenObjects {
    /// Whether some process of `owner` may hold an object unseen.
    fn unseen(&self, owner: u32) -> bool {
        self.blind || self.unseen.contains(&owner)
    }
}

fn open_objects(dir: &std::path::Path) -> OpenObjects {
    let mut open = OpenObjects { held: HashSet::new(), unseen: HashSet::new(), blind: false };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        open.blind = true;
        return open;
    };
    for p in procs.flatten() {
        if !p.file_name().to_str().is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let fds = match std::fs::read_dir(p.path().join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                if let Ok(md) = p.metadata() {
                    open.unseen.insert(md.uid()); // the process's user
                }
                continue;
            }
            Err(_) => continue, // it exited
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if target.starts_with(dir) {
                    open.held.insert(target);
                }
            }
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceoryx2::prelude::{FileName, SemanticString};

    fn config(prefix: &str) -> Config {
        let mut c = Config::default();
        c.global.prefix = FileName::new(prefix.as_bytes()).unwrap();
        c
    }

    fn shm(name: &str) -> PathBuf {
        shm_dir().join(name)
    }

    #[test]
    fn an_empty_object_nobody_holds_is_removed_and_others_stay() {
        let prefix = format!("unf{}_", std::process::id());
        let c = config(&prefix);
        let empty = shm(&format!("{prefix}a.dynamic"));
        let sized = shm(&format!("{prefix}b.dynamic"));
        let held = shm(&format!("{prefix}c.dynamic"));
        let foreign = shm(&format!("x{prefix}d.dynamic"));
        std::fs::write(&empty, b"").unwrap();
        std::fs::write(&sized, b"data").unwrap();
        std::fs::write(&foreign, b"").unwrap();
        let holder = std::fs::File::create(&held).unwrap();

        assert_eq!(reap(&c), 1);
        assert!(!empty.exists(), "an object of size zero that nobody holds is removed");
        assert!(sized.exists(), "an object with a size stays");
        assert!(held.exists(), "an object held open (a creator at work) stays");
        assert!(foreign.exists(), "another namespace's object stays");

        drop(holder);
        assert_eq!(reap(&c), 1, "once its holder is gone, it is removed");
        assert!(!held.exists());
        for p in [sized, foreign] {
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn an_empty_object_of_a_user_not_seen_is_removed_once_old_enough() {
        let prefix = format!("unf{}u_", std::process::id());
        let path = shm(&format!("{prefix}a.dynamic"));
        std::fs::write(&path, b"").unwrap();
        let owner = std::fs::metadata(&path).unwrap().uid();
        let start = std::time::Instant::now();
        let removed = reap_with(&prefix, |dir| {
            let mut open = open_objects(dir);
            open.unseen.insert(owner);
            open
        });
        assert_eq!(removed, 1, "an unfinished object is removed in the end");
        assert!(!path.exists());
        assert!(start.elapsed() >= UNSEEN_AGE - Duration::from_millis(50), "but not before it is old enough");

        std::fs::write(&path, b"").unwrap();
        let removed = reap_with(&prefix, |_| OpenObjects { held: HashSet::new(), unseen: HashSet::new(), blind: true });
        assert_eq!(removed, 1, "without /proc the age decides too");
        assert!(!path.exists());
    }

    #[test]
    fn removing_an_empty_object_frees_a_thread_that_waits_in_its_open() {
        use iceoryx2_bb_posix::shared_memory::AccessMode;
        use iceoryx2_cal::dynamic_storage::posix_shared_memory::{Builder, Configuration};
        use iceoryx2_cal::dynamic_storage::{DynamicStorageBuilder, DynamicStorageOpenError};
        use iceoryx2_cal::named_concept::{NamedConceptBuilder, NamedConceptConfiguration};
        use std::os::unix::fs::PermissionsExt;

        let prefix = format!("unf{}w_", std::process::id());
        let name = FileName::new(b"waited").unwrap();
        let cfg = Configuration::<u64>::default().prefix(&FileName::new(prefix.as_bytes()).unwrap());
        let path = shm(&cfg.path_for(&name).file_name().to_string());
        // what a creator that died right after shm_open leaves: empty, not yet readable
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o200)).unwrap();

        let (tx, rx) = std::sync::mpsc::channel();
        let opener = std::thread::spawn(move || {
            let r = Builder::<u64>::new(&name).config(&cfg).open(AccessMode::ReadWrite);
            tx.send(r.err()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "the crate waits for the object to get a size");
        assert_eq!(reap_prefix(&prefix), 1);
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("the waiting open returns once the object is gone");
        assert_eq!(got, Some(DynamicStorageOpenError::DoesNotExist));
        opener.join().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn the_watchdog_frees_a_watched_call_that_waits_on_an_empty_object() {
        use iceoryx2_bb_posix::shared_memory::AccessMode;
        use iceoryx2_cal::dynamic_storage::posix_shared_memory::{Builder, Configuration};
        use iceoryx2_cal::dynamic_storage::{DynamicStorageBuilder, DynamicStorageOpenError};
        use iceoryx2_cal::named_concept::{NamedConceptBuilder, NamedConceptConfiguration};

        let prefix = format!("unf{}d_", std::process::id());
        known(&config(&prefix));
        let name = FileName::new(b"watched").unwrap();
        let cfg = Configuration::<u64>::default().prefix(&FileName::new(prefix.as_bytes()).unwrap());
        let path = shm(&cfg.path_for(&name).file_name().to_string());
        std::fs::write(&path, b"").unwrap();

        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _w = watch();
            tx.send(Builder::<u64>::new(&name).config(&cfg).open(AccessMode::ReadWrite).err()).unwrap();
        });
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("the watchdog frees the call");
        assert_eq!(got, Some(DynamicStorageOpenError::DoesNotExist));
        assert!(!path.exists());
    }
}
