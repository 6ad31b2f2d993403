//! Blackboard services: a key-value store fixed at creation, one writer and many
//! readers, each value in a lock-free single-producer/many-consumer cell.
//!
//! Keys cross the boundary as raw bytes with the type details (name, size,
//! alignment) that Rust, C++ and Python peers declare for their key type, so
//! that every language opens the same service. Two keys are equal when their
//! bytes are equal wherever the key type has data: the caller gives a mask with
//! 0xff on data bytes and 0 on padding, since a peer may leave garbage in
//! padding. The comparison runs here; the caller is never called back.
//!
//! Values are fixed-size copy types, named and sized as the peers name them.
//! A writer writes into the cell a reader does not read, and publishes it with
//! one atomic increment (the entry's generation), so a reader sees a whole
//! value, and a writer that dies mid-write leaves the last complete one.
//!
//! Each entry has an id (`entry_id`, its offset in the service's data) that
//! iceoryx2's documented change notification uses as the event id of an event
//! service of the same name.

use std::sync::Arc;

use iceoryx2::port::reader::{EntryHandleError, ReaderCreateError, Reader, __InternalEntryHandle};
use iceoryx2::port::writer::{EntryHandleMutError, WriterCreateError, Writer, __InternalEntryHandleMut};
use iceoryx2::prelude::*;
use iceoryx2::service::builder::blackboard::{BlackboardCreateError, BlackboardOpenError};
use iceoryx2::service::marker::CustomKeyMarker;
use iceoryx2::service::port_factory::blackboard::PortFactory as BbFactory;
use iceoryx2::service::static_config::message_type_details::{TypeDetail, TypeVariant};

use crate::classify::Classify;
use crate::guard::{drop_export, into_handle, invalid, need_out, on, on_cold, on_hot, put, Fail, Outcome};
use crate::pubsub::{CREATE, OPEN};
use crate::status::*;
use crate::{bounds, NodeH, NotifierH, Svc};

/// Largest key (`iceoryx2::service::builder::blackboard::MAX_BLACKBOARD_KEY_SIZE`).
pub const MAX_KEY_SIZE: u64 = 64;
/// Largest value: the largest payload the other services take.
pub const MAX_VALUE_SIZE: u64 = (1 << 32) - 1;
/// Longest type name iceoryx2 stores.
const MAX_TYPE_NAME: usize = 256;

pub const BB_SET_MAX_READERS: u64 = 1 << 0;
pub const BB_SET_MAX_NODES: u64 = 1 << 1;

/// A fixed-size type as the peers declare it.
#[repr(C)]
pub struct BbType {
    pub name: *const u8,
    pub name_len: usize,
    pub size: u64,
    pub align: u64,
}

/// One entry of a new blackboard: its key (key-type size bytes), the type of
/// its value, and its initial value (value size bytes).
#[repr(C)]
pub struct BbEntry {
    pub key: *const u8,
    pub value: BbType,
    pub init: *const u8,
}

/// Blackboard settings; a field counts only when its bit is in `set`.
#[repr(C)]
pub struct BbOpts {
    pub set: u64,
    pub max_readers: u64,
    pub max_nodes: u64,
}

/// What a blackboard service stores about itself.
#[repr(C)]
pub struct BbConfig {
    pub max_readers: u64,
    pub max_nodes: u64,
    pub key_size: u64,
    pub key_align: u64,
    pub entries: u64,
}

/// An open blackboard service and how its keys compare.
pub struct BlackboardH {
    factory: Arc<BbFactory<Svc, CustomKeyMarker>>,
    key: KeyRule,
}

/// The key type and which of its bytes are data.
#[derive(Clone)]
struct KeyRule {
    detail: TypeDetail,
    mask: Vec<u8>,
}

impl KeyRule {
    fn eq(&self, a: *const u8, b: *const u8) -> bool {
        let n = self.mask.len();
        // SAFETY: the crate passes two keys of the key type's size.
        let (a, b) = unsafe { (std::slice::from_raw_parts(a, n), std::slice::from_raw_parts(b, n)) };
        a.iter().zip(b).zip(&self.mask).all(|((x, y), m)| (x ^ y) & m == 0)
    }
}

/// The writer of a blackboard.
pub struct BbWriterH {
    writer: Writer<Svc, CustomKeyMarker>,
    key: KeyRule,
    factory: Arc<BbFactory<Svc, CustomKeyMarker>>,
}

/// A reader of a blackboard.
pub struct BbReaderH {
    reader: Reader<Svc, CustomKeyMarker>,
    key: KeyRule,
    factory: Arc<BbFactory<Svc, CustomKeyMarker>>,
}

/// The writer's handle of one entry.
pub struct BbEntryMutH {
    entry: __InternalEntryHandleMut<Svc>,
    size: usize,
    align: usize,
}

/// A reader's handle of one entry.
pub struct BbEntryH {
    entry: __InternalEntryHandle<Svc>,
    size: usize,
    align: usize,
}

impl Classify for BlackboardCreateError {
    fn status(&self) -> i32 {
        match self {
            BlackboardCreateError::AlreadyExists => IOX_E_ALREADY_EXISTS,
            BlackboardCreateError::IsBeingCreatedByAnotherInstance | BlackboardCreateError::HangsInCreation => IOX_E_BUSY,
            BlackboardCreateError::InsufficientPermissions => IOX_E_PERMISSION,
            BlackboardCreateError::NoEntriesProvided => IOX_E_INVALID_ARGUMENT,
            BlackboardCreateError::Interrupt
            | BlackboardCreateError::InternalFailure
            | BlackboardCreateError::ServiceInCorruptedState
            | BlackboardCreateError::UnableToCreateServiceTag
            | BlackboardCreateError::ServiceConfigCouldNotBeCreated
            | BlackboardCreateError::UnableToGenerateUniqueServiceId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for BlackboardOpenError {
    fn status(&self) -> i32 {
        match self {
            BlackboardOpenError::DoesNotExist => IOX_E_NOT_FOUND,
            BlackboardOpenError::IncompatibleKeys => IOX_E_INCOMPATIBLE_TYPE,
            BlackboardOpenError::IncompatibleAttributes
            | BlackboardOpenError::IncompatibleMessagingPattern
            | BlackboardOpenError::DoesNotSupportRequestedAmountOfReaders
            | BlackboardOpenError::DoesNotSupportRequestedAmountOfNodes => IOX_E_INCOMPATIBLE,
            BlackboardOpenError::ExceedsMaxNumberOfNodes => IOX_E_LIMIT_REACHED,
            BlackboardOpenError::InsufficientPermissions => IOX_E_PERMISSION,
            BlackboardOpenError::HangsInCreation | BlackboardOpenError::IsMarkedForDestruction => IOX_E_BUSY,
            BlackboardOpenError::VersionMismatch => IOX_E_VERSION_MISMATCH,
            BlackboardOpenError::Interrupt
            | BlackboardOpenError::ServiceInCorruptedState
            | BlackboardOpenError::InternalFailure
            | BlackboardOpenError::UnableToCreateServiceTag => IOX_E_INTERNAL,
        }
    }
}

impl Classify for WriterCreateError {
    fn status(&self) -> i32 {
        match self {
            WriterCreateError::ExceedsMaxSupportedWriters => IOX_E_LIMIT_REACHED,
            WriterCreateError::InternalFailure
            | WriterCreateError::FailedToDeployThreadsafetyPolicy
            | WriterCreateError::UnableToCreatePortTag
            | WriterCreateError::UnableToGenerateUniqueWriterId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for ReaderCreateError {
    fn status(&self) -> i32 {
        match self {
            ReaderCreateError::ExceedsMaxSupportedReaders => IOX_E_LIMIT_REACHED,
            ReaderCreateError::FailedToDeployThreadsafetyPolicy
            | ReaderCreateError::UnableToCreatePortTag
            | ReaderCreateError::UnableToGenerateUniqueReaderId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for EntryHandleMutError {
    fn status(&self) -> i32 {
        match self {
            EntryHandleMutError::EntryDoesNotExist => IOX_E_NOT_FOUND,
            EntryHandleMutError::HandleAlreadyExists => IOX_E_LIMIT_REACHED,
        }
    }
}

impl Classify for EntryHandleError {
    fn status(&self) -> i32 {
        match self {
            EntryHandleError::EntryDoesNotExist => IOX_E_NOT_FOUND,
        }
    }
}

/// The type `t` describes, checked: a name of 1..=256 bytes, a size within
/// `max`, a power-of-two alignment within the largest iox accepts.
unsafe fn type_arg(what: &str, t: &BbType, max: u64) -> Outcome<TypeDetail> {
    let name = crate::guard::text(&format!("{what} type name"), t.name, t.name_len)?;
    if name.is_empty() || name.len() > MAX_TYPE_NAME {
        return invalid(format!("{what} type name has {} bytes, not 1..={MAX_TYPE_NAME}", name.len()));
    }
    if t.size == 0 || t.size > max {
        return invalid(format!("{what} type {name:?} has {} bytes, not 1..={max}", t.size));
    }
    if !t.align.is_power_of_two() || t.align > bounds::MAX_ALIGNMENT {
        return invalid(format!("{what} type {name:?} has alignment {}, not a power of two up to {}", t.align, bounds::MAX_ALIGNMENT));
    }
    if t.size % t.align != 0 {
        return invalid(format!("{what} type {name:?} has {} bytes, not a multiple of its alignment {}", t.size, t.align));
    }
    TypeDetail::__internal_new_from_parts(TypeVariant::FixedSize, name, t.size as usize, t.align as usize)
        .map_err(|e| Fail::new(IOX_E_INVALID_ARGUMENT, format!("invalid {what} type name {name:?}: {e:?}")))
}

fn describe(t: &TypeDetail) -> String {
    format!("{:?} (size {}, alignment {})", t.type_name().to_string(), t.size(), t.alignment())
}

/// The key rule of key type `t` and `mask` (null: every byte is data).
unsafe fn key_rule(t: &BbType, mask: *const u8) -> Outcome<KeyRule> {
    let detail = type_arg("key", t, MAX_KEY_SIZE)?;
    let n = t.size as usize;
    let mask = if mask.is_null() { vec![0xff; n] } else { std::slice::from_raw_parts(mask, n).to_vec() };
    Ok(KeyRule { detail, mask })
}

/// Memory a blackboard's value takes, at most: two cells, each aligned, and
/// their management, aligned too (`UnrestrictedAtomicMgmt`).
fn value_bytes(size: u64, align: u64) -> u128 {
    2 * (size as u128 + align as u128) + 64 + align as u128
}

fn check_opts(o: &BbOpts) -> Outcome {
    for (bit, name, v) in [(BB_SET_MAX_READERS, "MaxReaders", o.max_readers), (BB_SET_MAX_NODES, "MaxNodes", o.max_nodes)] {
        if o.set & bit != 0 && (v < 1 || v > bounds::MAX_COUNT) {
            return invalid(format!("{name} {v} is outside 1..={}", bounds::MAX_COUNT));
        }
    }
    Ok(())
}

/// Creates (`mode` CREATE) the blackboard `name` with `n_entries` entries, or
/// opens (`mode` OPEN) an existing one (`entries` is then ignored). Keys are of
/// the type `key`; `mask` (key size bytes, may be null) marks the key's data
/// bytes with 0xff and its padding with 0.
#[no_mangle]
pub unsafe extern "C" fn iox_blackboard_open(
    node: *mut NodeH,
    name: *const u8,
    name_len: usize,
    mode: u32,
    key: *const BbType,
    mask: *const u8,
    entries: *const BbEntry,
    n_entries: usize,
    opts: *const BbOpts,
    out: *mut *mut BlackboardH,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(node, errbuf, errcap, |n| {
        let (Some(k), Some(o)) = (key.as_ref(), opts.as_ref()) else { return invalid("null key type or options") };
        need_out(out)?;
        let name = crate::guard::checked_service_name(name, name_len)?;
        check_opts(o)?;
        let rule = key_rule(k, mask)?;
        let eq = rule.clone();
        let eq = Box::new(move |a: *const u8, b: *const u8| eq.eq(a, b));
        let factory = match mode {
            OPEN => {
                let mut b = n.node.service_builder(&name).blackboard_opener::<CustomKeyMarker>();
                if o.set & BB_SET_MAX_READERS != 0 {
                    b = b.max_readers(o.max_readers as usize);
                }
                if o.set & BB_SET_MAX_NODES != 0 {
                    b = b.max_nodes(o.max_nodes as usize);
                }
                let b = b.__internal_set_key_type_details(&rule.detail).__internal_set_key_eq_cmp_func(eq);
                b.open().map_err(|e| explain_open(n, &name, &rule, e))?
            }
            CREATE => {
                if n_entries == 0 || entries.is_null() {
                    return invalid("a blackboard needs at least one entry");
                }
                if n_entries as u64 > bounds::MAX_COUNT {
                    return invalid(format!("{n_entries} entries are more than {}", bounds::MAX_COUNT));
                }
                let list = std::slice::from_raw_parts(entries, n_entries);
                let mut bytes: u128 = 0;
                let mut types = Vec::with_capacity(n_entries);
                for (i, e) in list.iter().enumerate() {
                    if e.key.is_null() || e.init.is_null() {
                        return invalid(format!("entry {i} has no key or no initial value"));
                    }
                    types.push(type_arg("value", &e.value, MAX_VALUE_SIZE)?);
                    for (j, f) in list[..i].iter().enumerate() {
                        if rule.eq(f.key, e.key) {
                            return invalid(format!("entries {j} and {i} have the same key"));
                        }
                    }
                    bytes += value_bytes(e.value.size, e.value.align);
                }
                let readers = if o.set & BB_SET_MAX_READERS != 0 { o.max_readers } else { n.node.config().defaults.blackboard.max_readers as u64 };
                bytes += readers as u128 * 64;
                // before any initial value is read
                bounds::check_bytes("the blackboard's values", bytes).map_err(|m| Fail::new(IOX_E_OUT_OF_MEMORY, m))?;
                let mut values: Vec<(TypeDetail, Vec<u8>)> = list
                    .iter()
                    .zip(types)
                    .map(|(e, v)| (v, std::slice::from_raw_parts(e.init, e.value.size as usize).to_vec()))
                    .collect();
                let mut b = n.node.service_builder(&name).blackboard_creator::<CustomKeyMarker>();
                if o.set & BB_SET_MAX_READERS != 0 {
                    b = b.max_readers(o.max_readers as usize);
                }
                if o.set & BB_SET_MAX_NODES != 0 {
                    b = b.max_nodes(o.max_nodes as usize);
                }
                let mut b = b.__internal_set_key_type_details(&rule.detail).__internal_set_key_eq_cmp_func(eq);
                // The crate copies each initial value during create(); `values`
                // outlives it, so the cleanup has nothing to free.
                for (e, (v, init)) in list.iter().zip(values.iter_mut()) {
                    b = b.__internal_add(e.key, init.as_mut_ptr(), *v, Box::new(|| {}));
                }
                let r = b.create();
                drop(values);
                r?
            }
            _ => return invalid(format!("unknown open mode {mode}")),
        };
        put(out, into_handle(BlackboardH { factory: Arc::new(factory), key: rule }));
        Ok(())
    })
}

/// An opening refusal, with the key type the service has when that differs.
fn explain_open(n: &NodeH, name: &ServiceName, rule: &KeyRule, e: BlackboardOpenError) -> Fail {
    let mut f = Fail::from(e);
    if e == BlackboardOpenError::IncompatibleKeys {
        let have = Svc::details(name, n.node.config(), iceoryx2::service::messaging_pattern::MessagingPattern::Blackboard)
            .ok()
            .flatten()
            .map(|d| describe(d.static_details.blackboard().type_details()));
        f.text = match have {
            Some(h) => format!("the blackboard's keys are {h}, not {}", describe(&rule.detail)),
            None => format!("the blackboard's keys are not {}", describe(&rule.detail)),
        };
    }
    f
}

drop_export!(iox_blackboard_drop, BlackboardH);

/// What an existing blackboard stores about itself, read without joining it:
/// its settings and its key type (the name's first `key_name_len` bytes).
#[repr(C)]
pub struct BbDescription {
    pub max_readers: u64,
    pub max_nodes: u64,
    pub key_size: u64,
    pub key_align: u64,
    pub key_name_len: u64,
    pub key_name: [u8; MAX_TYPE_NAME],
}

/// Describes the existing blackboard `name`; `IOX_E_NOT_FOUND` when there is none.
#[no_mangle]
pub unsafe extern "C" fn iox_blackboard_describe(
    node: *mut NodeH,
    name: *const u8,
    name_len: usize,
    out: *mut BbDescription,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(node, errbuf, errcap, |n| {
        if out.is_null() {
            return invalid("null out-parameter");
        }
        let name = crate::guard::checked_service_name(name, name_len)?;
        let pattern = iceoryx2::service::messaging_pattern::MessagingPattern::Blackboard;
        let Some(d) = Svc::details(&name, n.node.config(), pattern)? else {
            return Err(Fail::new(IOX_E_NOT_FOUND, "no such blackboard"));
        };
        let c = d.static_details.blackboard();
        let t = c.type_details();
        let tn = t.type_name().to_string();
        let tn = tn.as_bytes();
        let k = tn.len().min(MAX_TYPE_NAME);
        let mut key_name = [0u8; MAX_TYPE_NAME];
        key_name[..k].copy_from_slice(&tn[..k]);
        put(
            out,
            BbDescription {
                max_readers: c.max_readers() as u64,
                max_nodes: c.max_nodes() as u64,
                key_size: t.size() as u64,
                key_align: t.alignment() as u64,
                key_name_len: k as u64,
                key_name,
            },
        );
        Ok(())
    })
}

/// Writes the service's stored settings.
#[no_mangle]
pub unsafe extern "C" fn iox_blackboard_config(h: *mut BlackboardH, out: *mut BbConfig) -> i32 {
    on(h, |b| {
        let c = b.factory.static_config();
        let mut entries = 0u64;
        b.factory.__internal_list_keys(|_| {
            entries += 1;
            CallbackProgression::Continue
        });
        put(
            out,
            BbConfig {
                max_readers: c.max_readers() as u64,
                max_nodes: c.max_nodes() as u64,
                key_size: b.key.detail.size() as u64,
                key_align: b.key.detail.alignment() as u64,
                entries,
            },
        );
        Ok(())
    })
}

/// Copies up to `max` keys (key size bytes each) into `buf`; returns how many
/// keys the service has.
#[no_mangle]
pub unsafe extern "C" fn iox_blackboard_keys(h: *mut BlackboardH, buf: *mut u8, max: usize) -> i64 {
    on_hot(h, |b| {
        let n = b.key.mask.len();
        let mut k = 0usize;
        b.factory.__internal_list_keys(|p| {
            if k < max && !buf.is_null() {
                std::ptr::copy_nonoverlapping(p, buf.add(k * n), n);
            }
            k += 1;
            CallbackProgression::Continue
        });
        Ok(k as i64)
    })
}

/// Creates the service's writer; a second one is refused with `IOX_E_LIMIT_REACHED`.
#[no_mangle]
pub unsafe extern "C" fn iox_bb_writer_create(h: *mut BlackboardH, out: *mut *mut BbWriterH, errbuf: *mut u8, errcap: usize) -> i32 {
    on_cold(h, errbuf, errcap, |b| {
        need_out(out)?;
        let writer = b.factory.writer_builder().create()?;
        put(out, into_handle(BbWriterH { writer, key: b.key.clone(), factory: b.factory.clone() }));
        Ok(())
    })
}

drop_export!(iox_bb_writer_drop, BbWriterH);

/// Creates a reader.
#[no_mangle]
pub unsafe extern "C" fn iox_bb_reader_create(h: *mut BlackboardH, out: *mut *mut BbReaderH, errbuf: *mut u8, errcap: usize) -> i32 {
    on_cold(h, errbuf, errcap, |b| {
        need_out(out)?;
        let reader = b.factory.reader_builder().create()?;
        put(out, into_handle(BbReaderH { reader, key: b.key.clone(), factory: b.factory.clone() }));
        Ok(())
    })
}

drop_export!(iox_bb_reader_drop, BbReaderH);

/// Whether the service has an entry of key `key`.
unsafe fn has_key(factory: &BbFactory<Svc, CustomKeyMarker>, rule: &KeyRule, key: *const u8) -> bool {
    let mut found = false;
    factory.__internal_list_keys(|p| {
        found = rule.eq(p, key);
        if found {
            CallbackProgression::Stop
        } else {
            CallbackProgression::Continue
        }
    });
    found
}

/// An entry lookup's refusal: no such key, or a key whose value has another type.
unsafe fn explain_entry(factory: &BbFactory<Svc, CustomKeyMarker>, rule: &KeyRule, key: *const u8, v: &TypeDetail, f: Fail) -> Fail {
    if f.code == IOX_E_LIMIT_REACHED {
        return Fail::new(
            f.code,
            "the entry has a writer handle already: an open one, or that of a writer whose process died (iceoryx2 0.10.0 does not release it)",
        );
    }
    if f.code != IOX_E_NOT_FOUND {
        return f;
    }
    if has_key(factory, rule, key) {
        Fail::new(IOX_E_INCOMPATIBLE_TYPE, format!("the entry of this key holds another value type than {}", describe(v)))
    } else {
        Fail::new(IOX_E_NOT_FOUND, "the blackboard has no entry of this key")
    }
}

/// Makes the writer's handle of the entry `key` (key size bytes) whose value is
/// of type `value`, and writes its entry id. Refusals: no such key
/// (`IOX_E_NOT_FOUND`), another value type (`IOX_E_INCOMPATIBLE_TYPE`), a handle
/// of that entry exists already (`IOX_E_LIMIT_REACHED`).
#[no_mangle]
pub unsafe extern "C" fn iox_bb_writer_entry(
    h: *mut BbWriterH,
    key: *const u8,
    value: *const BbType,
    out: *mut *mut BbEntryMutH,
    id: *mut u64,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(h, errbuf, errcap, |w| {
        let Some(vt) = value.as_ref() else { return invalid("null value type") };
        need_out(out)?;
        if key.is_null() {
            return invalid("null key");
        }
        let v = type_arg("value", vt, MAX_VALUE_SIZE)?;
        let entry = w.writer.__internal_entry(key, &v).map_err(|e| explain_entry(&w.factory, &w.key, key, &v, e.into()))?;
        put(id, entry.entry_id().as_value() as u64);
        put(out, into_handle(BbEntryMutH { entry, size: v.size(), align: v.alignment() }));
        Ok(())
    })
}

drop_export!(iox_bb_entry_mut_drop, BbEntryMutH);

/// Notifies `ntf` (when not null) with the entry id `id`; returns how many
/// listeners it reached.
unsafe fn notify(ntf: *mut NotifierH, id: u64) -> Result<i64, i32> {
    match ntf.as_ref() {
        Some(n) => n.notify(id).map(|k| k as i64),
        None => Ok(0),
    }
}

/// Writes `len` bytes (the value's size) as the entry's new value, then
/// notifies `ntf` (may be null) with `id`, the entry's id: one crossing per
/// write. Returns the listeners notified, or a negated status:
/// `IOX_E_INVALID_ARGUMENT` when nothing was written, any other when the value
/// was written but the notification failed.
#[no_mangle]
pub unsafe extern "C" fn iox_bb_entry_mut_update(h: *mut BbEntryMutH, value: *const u8, len: usize, ntf: *mut NotifierH, id: u64) -> i64 {
    on_hot(h, |e| {
        if len != e.size || value.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let cell = e.entry.__internal_get_ptr_to_write_cell(e.size, e.align);
        std::ptr::copy_nonoverlapping(value, cell, e.size);
        e.entry.__internal_update_write_cell();
        notify(ntf, id)
    })
}

/// The address of the cell the next value is written to, for writing in place;
/// `iox_bb_entry_mut_commit` publishes it. Not publishing leaves the value as it
/// was. Returns the address, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_bb_entry_mut_loan(h: *mut BbEntryMutH) -> i64 {
    on_hot(h, |e| Ok(e.entry.__internal_get_ptr_to_write_cell(e.size, e.align) as i64))
}

/// Publishes the value written at the address `iox_bb_entry_mut_loan` gave, then
/// notifies as `iox_bb_entry_mut_update` does.
#[no_mangle]
pub unsafe extern "C" fn iox_bb_entry_mut_commit(h: *mut BbEntryMutH, ntf: *mut NotifierH, id: u64) -> i64 {
    on_hot(h, |e| {
        e.entry.__internal_update_write_cell();
        notify(ntf, id)
    })
}

/// Makes a reader's handle of the entry `key` whose value is of type `value`,
/// and writes its entry id. Refusals as for `iox_bb_writer_entry`, without the
/// limit: any number of reader handles may exist.
#[no_mangle]
pub unsafe extern "C" fn iox_bb_reader_entry(
    h: *mut BbReaderH,
    key: *const u8,
    value: *const BbType,
    out: *mut *mut BbEntryH,
    id: *mut u64,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(h, errbuf, errcap, |r| {
        let Some(vt) = value.as_ref() else { return invalid("null value type") };
        need_out(out)?;
        if key.is_null() {
            return invalid("null key");
        }
        let v = type_arg("value", vt, MAX_VALUE_SIZE)?;
        let entry = r.reader.__internal_entry(key, &v).map_err(|e| explain_entry(&r.factory, &r.key, key, &v, e.into()))?;
        put(id, entry.entry_id().as_value() as u64);
        put(out, into_handle(BbEntryH { entry, size: v.size(), align: v.alignment() }));
        Ok(())
    })
}

drop_export!(iox_bb_entry_drop, BbEntryH);

/// Copies the entry's value (`len` = its size) into `buf` and returns its
/// generation (at least 1), or a negated status. The generation may be older
/// than the value, never newer, so `iox_bb_entry_current` can report a change
/// that has already been read, but never miss one.
#[no_mangle]
pub unsafe extern "C" fn iox_bb_entry_get(h: *mut BbEntryH, buf: *mut u8, len: usize) -> i64 {
    on_hot(h, |e| {
        if len != e.size || buf.is_null() {
            return Err(IOX_E_INVALID_ARGUMENT);
        }
        let mut generation = 0u64;
        e.entry.get(buf, e.size, e.align, &mut generation);
        Ok((generation & (i64::MAX as u64)) as i64)
    })
}

/// Returns 1 when `generation` is the entry's latest, 0 when a newer value was
/// written, or a negated status.
#[no_mangle]
pub unsafe extern "C" fn iox_bb_entry_current(h: *mut BbEntryH, generation: u64) -> i64 {
    on_hot(h, |e| Ok(e.entry.is_up_to_date(generation) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_on_their_data_bytes_only() {
        let rule = KeyRule {
            detail: TypeDetail::__internal_new_from_parts(TypeVariant::FixedSize, "K", 4, 2).unwrap(),
            mask: vec![0xff, 0, 0xff, 0xff],
        };
        let (a, b, c) = ([1u8, 9, 2, 3], [1u8, 7, 2, 3], [1u8, 9, 2, 4]);
        assert!(rule.eq(a.as_ptr(), b.as_ptr()));
        assert!(!rule.eq(a.as_ptr(), c.as_ptr()));
    }

    #[test]
    fn type_details_are_checked() {
        let t = |name: &'static str, size, align| BbType { name: name.as_ptr(), name_len: name.len(), size, align };
        unsafe {
            assert!(type_arg("key", &t("k", 65, 1), MAX_KEY_SIZE).is_err());
            assert!(type_arg("key", &t("k", 0, 1), MAX_KEY_SIZE).is_err());
            assert!(type_arg("key", &t("k", 8, 3), MAX_KEY_SIZE).is_err());
            assert!(type_arg("key", &t("", 8, 8), MAX_KEY_SIZE).is_err());
            assert!(type_arg("key", &t("k", 6, 4), MAX_KEY_SIZE).is_err());
            assert_eq!(type_arg("key", &t("BlackboardKey", 24, 8), MAX_KEY_SIZE).unwrap().size(), 24);
            assert!(type_arg("value", &t("v", MAX_VALUE_SIZE + 1, 1), MAX_VALUE_SIZE).is_err());
        }
    }

    #[test]
    fn values_beyond_the_memory_bound_are_refused_before_they_are_read() {
        let id = std::process::id();
        let (prefix, root) = (format!("nb{id}_"), format!("/tmp/iox-native-test-{id}-b/"));
        let config = crate::node::isolated_config(&prefix, &root).unwrap();
        let node = NodeBuilder::new().signal_handling_mode(SignalHandlingMode::Disabled).config(&config).create::<Svc>().unwrap();
        let n = into_handle(NodeH::new(node));
        let (kname, vname) = ("u8", "[u8; 4294967295]");
        let key = BbType { name: kname.as_ptr(), name_len: kname.len(), size: 1, align: 1 };
        // Far more than any machine holds; the initial values are one byte
        // each, which is all that may be read of them before the refusal.
        let (keys, init) = ([0u8, 1, 2, 3, 4, 5, 6, 7], [0u8; 8]);
        let entries: Vec<BbEntry> = (0..8)
            .map(|i| BbEntry {
                key: &keys[i],
                value: BbType { name: vname.as_ptr(), name_len: vname.len(), size: MAX_VALUE_SIZE, align: 1 },
                init: &init[i],
            })
            .collect();
        let opts = BbOpts { set: 0, max_readers: 0, max_nodes: 0 };
        let (name, mut out, mut eb) = ("huge", std::ptr::null_mut(), [0u8; 256]);
        let st = unsafe {
            iox_blackboard_open(n, name.as_ptr(), name.len(), CREATE, &key, std::ptr::null(), entries.as_ptr(), entries.len(), &opts, &mut out, eb.as_mut_ptr(), eb.len())
        };
        assert_eq!(st, IOX_E_OUT_OF_MEMORY, "{}", String::from_utf8_lossy(&eb));
        assert!(out.is_null());
        unsafe { crate::node::iox_node_drop(n) };
        let (p, r) = (prefix.as_bytes(), root.as_bytes());
        let st = unsafe { crate::layout::iox_remove_isolation(p.as_ptr(), p.len(), r.as_ptr(), r.len(), eb.as_mut_ptr(), eb.len()) };
        assert_eq!(st, IOX_OK);
    }
}

/// The writers and readers of the blackboard `name`, whose static config is
/// `c`, found by opening it from `n` with the key type it has (opening creates
/// no port). None when it cannot be opened now.
pub fn port_counts(n: &NodeH, name: &ServiceName, c: &iceoryx2::service::static_config::blackboard::StaticConfig) -> Option<[u64; 2]> {
    let detail = c.type_details().clone();
    let size = detail.size();
    // Keys are only compared when entries are looked up, which a count does
    // not do; byte equality is the comparison a listing can offer.
    let eq = Box::new(move |a: *const u8, b: *const u8| unsafe {
        std::slice::from_raw_parts(a, size) == std::slice::from_raw_parts(b, size)
    });
    let b = n.node.service_builder(name).blackboard_opener::<CustomKeyMarker>();
    // SAFETY: the stored type details are the service's own.
    let b = unsafe { b.__internal_set_key_type_details(&detail).__internal_set_key_eq_cmp_func(eq) };
    let f = b.open().ok()?;
    let d = f.dynamic_config();
    Some([d.number_of_writers() as u64, d.number_of_readers() as u64])
}
