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
//! dead nodes' resources that found some also reaps at once.
//!
//! Hot calls (sends, receives, loans) wait on such an object too: a port
//! connects to a port that came since its last call when it next sends or
//! receives, and the connection between them is a dynamic storage, which the
//! other port's process may have died creating. A hot call is too frequent
//! for `watch`'s lock, so it runs under a [`watch_hot`]: the thread counts the
//! hot calls it begins and ends in a slot of its own. While some hot call
//! runs, the watchdog looks at the slots every [`PATIENCE`] and reaps when a
//! slot shows the call it showed at the last look still running. After a look
//! that finds no hot call begun since the last one and none running, it stops
//! looking until a hot call begins again and wakes it, so a process whose
//! channels are idle costs nothing.

use std::collections::HashSet;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Starts the watchdog once; under WATCHED's lock.
fn start(w: &mut Watched) {
    if !w.started {
        w.started = std::thread::Builder::new().name("iox-unfinished".into()).spawn(watchdog).is_ok();
    }
}

/// A watched call, from [`watch`] until it is dropped.
pub struct Watch(u64);

/// Watches the calling thread's call until the returned value is dropped.
pub fn watch() -> Watch {
    let mut w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    start(&mut w);
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

/// A thread's count of the hot calls it began and ended, written by that
/// thread alone; its own cache line, since every hot call writes it.
#[repr(align(64))]
struct Slot {
    began: AtomicU64,
    ended: AtomicU64,
}

/// The slots of every thread that made a hot call. A slot outlives its
/// thread (a few bytes per thread that ever called; Go keeps its threads).
static SLOTS: Mutex<Vec<&'static Slot>> = Mutex::new(Vec::new());

/// Whether the watchdog looks at the slots. A hot call that finds it unset
/// wakes the watchdog (see [`watch_hot`] and [`look_hot`] for the ordering).
static HOT: AtomicBool = AtomicBool::new(false);

thread_local! {
    static SLOT: &'static Slot = {
        let slot: &'static Slot = Box::leak(Box::new(Slot { began: AtomicU64::new(0), ended: AtomicU64::new(0) }));
        SLOTS.lock().unwrap_or_else(|p| p.into_inner()).push(slot);
        slot
    };
}

/// A watched hot call, from [`watch_hot`] until it is dropped.
pub struct HotWatch(Option<&'static Slot>);

/// Watches the calling thread's hot call until the returned value is dropped:
/// a count in the thread's own slot, and a wake-up of the watchdog when it
/// does not look at the slots (the first hot call after a quiet spell).
pub fn watch_hot() -> HotWatch {
    // A thread being torn down has no slot any more: its call goes unwatched.
    let Ok(slot) = SLOT.try_with(|s| *s) else { return HotWatch(None) };
    // The count before the flag, and the watchdog clears the flag before it
    // reads the counts (both sequentially consistent): either the watchdog
    // sees this call and keeps looking, or this call sees the flag cleared
    // and wakes it.
    slot.began.store(slot.began.load(Ordering::Relaxed) + 1, Ordering::SeqCst);
    if !HOT.load(Ordering::SeqCst) {
        let mut w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
        start(&mut w);
        if !HOT.swap(true, Ordering::SeqCst) {
            WAKE.notify_one();
        }
    }
    HotWatch(Some(slot))
}

impl Drop for HotWatch {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            slot.ended.store(slot.ended.load(Ordering::Relaxed) + 1, Ordering::Release);
        }
    }
}

/// The watchdog's look at the hot calls. `last` holds each slot's count of
/// calls begun at the last look. It reports whether a call runs that ran at
/// the last look already (stuck), and whether a call began since or runs
/// (busy). After a quiet spell (not busy) it clears HOT, then looks once
/// more: a call that began meanwhile either shows there, and HOT is set
/// again, or found HOT cleared and wakes the watchdog.
fn look_hot(last: &mut Vec<u64>) -> (bool, bool) {
    let slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    last.resize(slots.len(), u64::MAX);
    let scan = |last: &mut Vec<u64>| {
        let (mut stuck, mut busy) = (false, false);
        for (i, slot) in slots.iter().enumerate() {
            let began = slot.began.load(Ordering::SeqCst);
            let running = began != slot.ended.load(Ordering::Acquire);
            stuck |= running && last[i] == began; // the same call as at the last look
            busy |= running || last[i] != began;
            last[i] = began;
        }
        (stuck, busy)
    };
    let (stuck, busy) = scan(last);
    if busy {
        return (stuck, true);
    }
    HOT.store(false, Ordering::SeqCst);
    let (_, busy) = scan(last);
    if busy {
        HOT.store(true, Ordering::SeqCst);
    }
    (stuck, busy)
}

/// The watchdog thread: reaps whenever a watched call has run for PATIENCE,
/// or a hot call has run from one look at the slots to the next (PATIENCE
/// apart while hot calls are made).
fn watchdog() {
    let mut last = Vec::new();
    let mut hot_at: Option<Instant> = None; // when the slots were last looked at, while HOT
    let mut w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        let mut reap = false;
        if HOT.load(Ordering::SeqCst) && hot_at.is_none_or(|t| now.duration_since(t) >= PATIENCE) {
            let (stuck, busy) = look_hot(&mut last);
            reap |= stuck;
            hot_at = busy.then_some(now);
        }
        let oldest = w.calls.iter().map(|c| c.1).min();
        if oldest.is_some_and(|o| now.duration_since(o) >= PATIENCE) {
            for c in w.calls.iter_mut() {
                if now.duration_since(c.1) >= PATIENCE {
                    c.1 = now; // another PATIENCE before the next reap for it
                }
            }
            reap = true;
        }
        if reap {
            drop(w);
            reap_known();
            w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let due = [oldest.map(|o| o + PATIENCE), hot_at.map(|t| t + PATIENCE)].into_iter().flatten().min();
        w = match due {
            // nothing watched: a watched call, or a hot call that finds HOT cleared, wakes it
            None if !HOT.load(Ordering::SeqCst) => WAKE.wait(w).unwrap_or_else(|p| p.into_inner()),
            None => continue, // a hot call set HOT since the look
            Some(due) => WAKE.wait_timeout(w, due.saturating_duration_since(Instant::now())).unwrap_or_else(|p| p.into_inner()).0,
        };
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

    /// Makes an empty object `name` in the namespace `prefix`, known to the
    /// watchdog, and opens it as the crate opens a dynamic storage, on a
    /// thread of its own under the watch that `watcher` makes. The receiver
    /// gets the open's error once the open returns.
    fn open_unfinished<W: 'static>(
        prefix: &str,
        name: &str,
        watcher: fn() -> W,
    ) -> (std::sync::mpsc::Receiver<Option<iceoryx2_cal::dynamic_storage::DynamicStorageOpenError>>, PathBuf) {
        use iceoryx2_bb_posix::shared_memory::AccessMode;
        use iceoryx2_cal::dynamic_storage::posix_shared_memory::{Builder, Configuration};
        use iceoryx2_cal::dynamic_storage::DynamicStorageBuilder;
        use iceoryx2_cal::named_concept::{NamedConceptBuilder, NamedConceptConfiguration};

        known(&config(prefix));
        let name = FileName::new(name.as_bytes()).unwrap();
        let cfg = Configuration::<u64>::default().prefix(&FileName::new(prefix.as_bytes()).unwrap());
        let path = shm(&cfg.path_for(&name).file_name().to_string());
        std::fs::write(&path, b"").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _w = watcher();
            tx.send(Builder::<u64>::new(&name).config(&cfg).open(AccessMode::ReadWrite).err()).unwrap();
        });
        (rx, path)
    }

    #[test]
    fn the_watchdog_frees_a_watched_call_that_waits_on_an_empty_object() {
        use iceoryx2_cal::dynamic_storage::DynamicStorageOpenError;

        let (rx, path) = open_unfinished(&format!("unf{}d_", std::process::id()), "watched", watch);
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("the watchdog frees the call");
        assert_eq!(got, Some(DynamicStorageOpenError::DoesNotExist));
        assert!(!path.exists());
    }

    #[test]
    fn the_watchdog_frees_a_hot_call_that_waits_on_an_empty_object_then_rests() {
        use iceoryx2_cal::dynamic_storage::DynamicStorageOpenError;

        let (rx, path) = open_unfinished(&format!("unf{}h_", std::process::id()), "hot", watch_hot);
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("the watchdog frees the hot call");
        assert_eq!(got, Some(DynamicStorageOpenError::DoesNotExist));
        assert!(!path.exists());

        // With no hot call made any more, the watchdog stops looking at the
        // slots after a quiet spell, and the next hot call wakes it again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while HOT.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the watchdog still looks at the slots after 10 s without a hot call");
            std::thread::sleep(PATIENCE / 10);
        }
        drop(watch_hot());
        assert!(HOT.load(Ordering::SeqCst), "a hot call after a quiet spell wakes the watchdog");
    }

    /// Removes the file at its path when dropped.
    struct RemoveOnDrop(PathBuf);

    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn hot_calls_that_come_and_go_around_the_watchdogs_looks_never_hide_a_stuck_one() {
        let prefix = format!("unf{}s_", std::process::id());
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        // Threads whose hot calls begin and end with pauses of up to four
        // times PATIENCE, so that the watchdog keeps going quiet and being
        // woken.
        let callers: Vec<_> = (0..2u64)
            .map(|k| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = k + 1;
                    while !stop.load(Ordering::Relaxed) {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        drop(watch_hot());
                        std::thread::sleep(Duration::from_micros((x >> 33) % 200_000));
                    }
                })
            })
            .collect();
        for round in 0..8 {
            let (rx, path) = open_unfinished(&prefix, &format!("stuck{round}"), watch_hot);
            let _gone = RemoveOnDrop(path); // also when the round fails: frees the opener
            let freed = rx.recv_timeout(Duration::from_secs(10));
            assert!(matches!(freed, Ok(Some(_))), "round {round}: the stuck hot call was not freed within 10 s");
            // some rounds begin while the watchdog is quiet, others while it looks
            std::thread::sleep(Duration::from_micros(round * 29_000));
        }
        stop.store(true, Ordering::Relaxed);
        for c in callers {
            c.join().unwrap();
        }
    }
}
