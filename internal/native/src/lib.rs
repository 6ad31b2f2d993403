//! iox_native: a small C ABI over the `iceoryx2` crate, shaped for Go's purego.
//!
//! Rules every export follows:
//! * no callbacks; results go through out-parameters; the return value is a
//!   status code (`IOX_OK` = 0), readable with `iox_status_text`;
//! * cold calls (node, service and port creation) also write the crate's own
//!   error description into a caller-provided buffer;
//! * one crossing per message on the hot paths (copy-send, batched receive);
//! * no Rust panic unwinds across the boundary: every body runs inside
//!   `catch_unwind` (`guard`) and a panic becomes `IOX_E_PANIC`;
//! * every handle has exactly one drop function.
//!
//! Everything the library knows of iceoryx2's internals (error kinds, where a
//! namespace keeps its files, how a service records its release) stays in this
//! crate; the Go side sees status codes and settings.
//!
//! Modules, one concept each: `status` (codes and their text), `classify`
//! (crate errors → codes), `guard` (what every export does around its body),
//! `library`, `node`, `layout` (a namespace's files), `existing` (services made
//! elsewhere), `pubsub`, `publisher`, `subscriber`, `sample`, `event`,
//! `notifier`, `listener`, `reqres` (request-response services and their
//! ports), `blackboard` (blackboard services, their writer, readers and
//! entries), `listing` (a namespace's services and nodes), `bounds` (memory
//! bounds), `diagnostics` (panics), `waitword` (a receiving end's word in
//! shared memory: parked or not, the last sample taken), `unfinished`
//! (shared-memory objects whose creator died before it gave them a size).

mod blackboard;
mod bounds;
mod classify;
mod diagnostics;
mod event;
mod existing;
mod guard;
mod layout;
mod library;
mod listener;
mod listing;
mod node;
mod notifier;
mod publisher;
mod pubsub;
mod reqres;
mod sample;
mod status;
mod subscriber;
mod unfinished;
mod waitword;

use iceoryx2::prelude::ipc_threadsafe;
use iceoryx2::service::marker::{CustomHeaderMarker, CustomPayloadMarker};

// The crate-wide helpers and types, reachable as `crate::…` from every module
// (not every one is used by the modules here).
#[allow(unused_imports)]
pub(crate) use classify::{loan_error, send_error, Classify};
#[allow(unused_imports)]
pub(crate) use event::EventH;
#[allow(unused_imports)]
pub(crate) use guard::{
    cold, drop_handle, fail, guard, guard_err, guard_value, handle, into_handle, need_out, on, on_cold, on_hot, put,
    refuse, service_name, text_arg, Fail, Outcome,
};
pub(crate) use node::NodeH;
#[allow(unused_imports)]
pub(crate) use notifier::NotifierH;
#[allow(unused_imports)]
pub(crate) use publisher::{populate, MAX_SPIN, POPULATE_FROM};
#[allow(unused_imports)]
pub(crate) use pubsub::{CREATE, HEADER_TYPE, OPEN, OPEN_OR_CREATE};
pub use status::*;

/// Version of this C ABI. The Go loader refuses a library with another value.
pub const ABI_VERSION: u32 = 8;

/// The iceoryx2 release this library is built on (pinned in Cargo.toml).
pub const ICEORYX2_VERSION: &str = "0.10.0";

/// The service variant of every port: thread-safe, since goroutines move between
/// OS threads (same shared-memory layout as `ipc::Service`).
pub(crate) type Svc = ipc_threadsafe::Service;
/// The payload of byte and typed services: elements whose type details are set
/// at run time.
pub(crate) type Bytes = [CustomPayloadMarker];
/// The user header, whose type details are set at run time too.
pub(crate) type Hdr = CustomHeaderMarker;
