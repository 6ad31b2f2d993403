//! The wait word of a receiving end: a small shared-memory object beside its
//! services, through which the receiver tells its senders that it is about to
//! park (so that they notify it, and only then) and which sample it took last
//! (so that a sender knows its room before it sends a loaned sample, which
//! cannot be taken back).
//!
//! The receiving end creates and owns the object; senders open it by the
//! owner's node id and a key (the receiving port's id). Its name starts with
//! the namespace's prefix, so removing a namespace removes it, and it names its
//! owner's node, so that `remove_dead` (run when a node is made and by dead-node
//! cleanup) can remove the words of nodes that died; a sender that sees its
//! receiver's process die removes the word at once (`iox_waitword_remove`).
//! Go reads and writes the words with its own (sequentially consistent)
//! atomics; this crate only maps the memory.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use iceoryx2::config::Config;
use iceoryx2::node::{Node, NodeState, NodeView};
use iceoryx2::prelude::{CallbackProgression, FileName, SemanticString};
use iceoryx2_bb_posix::shared_memory::SharedMemory;

use crate::guard::{drop_export, guard_value, handle, into_handle};
use crate::node::NodeH;
use crate::notifier::NotifierH;
use crate::status::*;
use crate::Svc;

/// Size of the object: one cache line.
const SIZE: usize = 64;
/// Written at offset 16 by the owner once the object is ready.
const MAGIC: u64 = u64::from_le_bytes(*b"ioxwait1");
const SUFFIX: &str = ".iox_wait";

/// A mapped wait word. Go reads its address from the first word. The object's
/// descriptor is closed once it is mapped: a process holds hundreds of channel
/// ends, and descriptors are what runs out first.
#[repr(C)]
pub struct WaitWordH {
    addr: *mut u8,
    path: std::ffi::CString,
    owner: std::sync::atomic::AtomicBool,
}

impl Drop for WaitWordH {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, SIZE);
            if self.owner.load(Ordering::SeqCst) {
                libc::shm_unlink(self.path.as_ptr());
            }
        }
    }
}

/// Maps the object `path` (created, or opened when `create` is false); its
/// address, or a status.
unsafe fn map(path: &std::ffi::CString, create: bool) -> Result<*mut u8, i32> {
    let flags = if create { libc::O_CREAT | libc::O_EXCL | libc::O_RDWR } else { libc::O_RDWR };
    let fd = libc::shm_open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o600);
    if fd < 0 {
        return Err(errno_status());
    }
    let ok = if create {
        libc::ftruncate(fd, SIZE as libc::off_t) == 0
    } else {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_size as usize >= SIZE
    };
    let addr = if ok {
        libc::mmap(std::ptr::null_mut(), SIZE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
    } else {
        libc::MAP_FAILED
    };
    let err = if addr == libc::MAP_FAILED { Some(errno_status()) } else { None };
    libc::close(fd);
    match err {
        Some(e) => {
            if create {
                libc::shm_unlink(path.as_ptr());
            }
            Err(e)
        }
        None => Ok(addr as *mut u8),
    }
}

fn errno_status() -> i32 {
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => IOX_E_PERMISSION,
        Some(libc::ENOENT) => IOX_E_NOT_FOUND,
        Some(libc::EMFILE) | Some(libc::ENFILE) => IOX_E_LIMIT_REACHED,
        Some(libc::ENOMEM) | Some(libc::ENOSPC) => IOX_E_OUT_OF_MEMORY,
        _ => IOX_E_INTERNAL,
    }
}

fn shm_path(name: &FileName) -> Result<std::ffi::CString, i32> {
    std::ffi::CString::new(format!("/{}", name)).map_err(|_| IOX_E_INVALID_NAME)
}

fn name(config: &Config, owner: u128, key: u128) -> Result<FileName, i32> {
    let prefix = config.global.prefix.to_string();
    let n = format!("{prefix}{owner:032x}_{key:032x}{SUFFIX}");
    FileName::new(n.as_bytes()).map_err(|_| IOX_E_INVALID_NAME)
}

fn id(lo: u64, hi: u64) -> u128 {
    (lo as u128) | ((hi as u128) << 64)
}

/// Creates the wait word of the receiving port `key` of this node and returns
/// its handle, or a negated status. The object is removed when the handle is
/// dropped.
#[no_mangle]
pub unsafe extern "C" fn iox_waitword_create(node: *mut NodeH, key_lo: u64, key_hi: u64) -> i64 {
    guard_value(|| {
        let n = handle(node).ok_or(IOX_E_INVALID_ARGUMENT)?;
        let name = name(n.node.config(), n.node.id().value(), id(key_lo, key_hi))?;
        let path = shm_path(&name)?;
        // A word of this name is left over only by a process of the same node
        // id, which cannot be alive. A new object is zero-filled by the kernel.
        libc::shm_unlink(path.as_ptr());
        let addr = map(&path, true)?;
        (*(addr.add(16) as *const AtomicU64)).store(MAGIC, Ordering::SeqCst);
        Ok(into_handle(WaitWordH { addr, path, owner: true.into() }) as i64)
    })
}

/// Opens the wait word that node `owner` made for its receiving port `key`, or
/// returns 0 when there is none (the receiver does not use one, or is gone).
#[no_mangle]
pub unsafe extern "C" fn iox_waitword_open(node: *mut NodeH, owner_lo: u64, owner_hi: u64, key_lo: u64, key_hi: u64) -> i64 {
    guard_value(|| {
        let n = handle(node).ok_or(IOX_E_INVALID_ARGUMENT)?;
        let name = name(n.node.config(), id(owner_lo, owner_hi), id(key_lo, key_hi))?;
        let path = shm_path(&name)?;
        let Ok(addr) = map(&path, false) else { return Ok(0) };
        let w = WaitWordH { addr, path, owner: false.into() };
        if (*(addr.add(16) as *const AtomicU64)).load(Ordering::SeqCst) != MAGIC {
            return Ok(0); // still being made (dropping w unmaps it)
        }
        Ok(into_handle(w) as i64)
    })
}

/// Removes the wait word of a receiver that died, through a handle that opened
/// it: the object goes when the handle is dropped.
#[no_mangle]
pub unsafe extern "C" fn iox_waitword_remove(h: *mut WaitWordH) -> i32 {
    crate::guard::on(h, |w| {
        w.owner.store(true, Ordering::SeqCst);
        Ok(())
    })
}

drop_export!(
    /// Unmaps a wait word; the owner's handle also removes it.
    iox_waitword_drop,
    WaitWordH
);

/// Removes the wait words of the namespace whose owner node is not alive: what
/// crashed receivers left. Returns how many it removed.
pub fn remove_dead(config: &Config) -> u64 {
    let prefix = config.global.prefix.to_string();
    let mut alive = Vec::new();
    if Node::<Svc>::list(config, |state| {
        match state {
            NodeState::Alive(view) => alive.push(view.id().value()),
            // a node this process cannot see or one half made may be alive
            NodeState::Inaccessible(id) | NodeState::Undefined(id) => alive.push(id.value()),
            NodeState::Dead(_) => {}
        }
        CallbackProgression::Continue
    })
    .is_err()
    {
        return 0;
    }
    let mut removed = 0;
    for f in SharedMemory::list() {
        let f = f.to_string();
        let Some(rest) = f.strip_prefix(&prefix).and_then(|r| r.strip_suffix(SUFFIX)) else {
            continue;
        };
        let Some((owner, key)) = rest.split_once('_') else { continue };
        if owner.len() != 32 || key.len() != 32 {
            continue;
        }
        let Ok(owner) = u128::from_str_radix(owner, 16) else { continue };
        if alive.contains(&owner) {
            continue;
        }
        if let Ok(name) = FileName::new(f.as_bytes()) {
            if matches!(SharedMemory::remove(&name), Ok(true)) {
                removed += 1;
            }
        }
    }
    removed
}

/// After a message reached a receiver: notifies `id` on `ntf` (when not null)
/// unless the receiver's wait word (`word`, when not null) says it does not
/// park. The compare-and-swap that claims the mark is sequentially consistent:
/// it orders the message, put into the receiver's queue before, ahead of the
/// look at the mark, which the receiver sets before it looks at its queue for
/// the last time. So either the receiver finds the message or the sender finds
/// the mark, and of several sends while it parks one notifies.
pub unsafe fn wake(ntf: *mut NotifierH, id: u64, word: *const u8) -> Result<(), i32> {
    let Some(n) = handle(ntf) else { return Ok(()) };
    if !word.is_null() {
        let parked = &*(word as *const AtomicU32);
        if parked.compare_exchange(1, 0, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return Ok(());
        }
    }
    n.notify(id).map(|_| ())
}
