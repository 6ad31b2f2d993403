//! Services that exist already, possibly made by another process or another
//! iceoryx2 release: reading their settings without joining them, and saying
//! why one refused to be opened (another release, other types).
//!
//! iceoryx2 reports a service whose static configuration it cannot read as
//! corrupted; a static configuration written by an older release is one it
//! cannot read (releases before 0.10 record no version at all). So when a
//! service is refused as corrupted or as of another version, its stored static
//! configuration is read here with the crate's own serializer, looking only at
//! the two fields every release has written: the service name and the version.

use iceoryx2::prelude::*;
use iceoryx2::service::builder::event::{EventCreateError, EventOpenError, EventOpenOrCreateError};
use iceoryx2::service::builder::publish_subscribe::{
    PublishSubscribeCreateError, PublishSubscribeOpenError, PublishSubscribeOpenOrCreateError,
};
use iceoryx2::service::service_hash::ServiceHash;
use iceoryx2::service::static_config::message_type_details::{TypeDetail, TypeVariant};
use iceoryx2::service::static_config::messaging_pattern::MessagingPattern as StaticPattern;
use iceoryx2::service::static_config::StaticConfig;
use iceoryx2::service::{Service, ServiceDetailsError};
use iceoryx2_bb_elementary::package_version::PackageVersion;
use iceoryx2_cal::serialize::Serialize;
use serde::Deserialize;

use crate::event::EventConfig;
use crate::guard::{checked_service_name, on_cold, put, Fail, Outcome};
use crate::pubsub::PubSubConfig;
use crate::reqres::ReqResDescription;
use crate::status::*;
use crate::{layout, NodeH, Svc};

/// What an opening refusal was, as far as explaining it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The static configuration could not be read (another release, or damage).
    Unreadable,
    VersionMismatch,
    IncompatibleTypes,
    Other,
}

/// A crate error from opening a service, with what it was. Only the variants
/// below need explaining; every other one (now or in a later release) is passed
/// on as `classify` classified it, hence the catch-all arms of the `seen_*`
/// functions, which decide nothing about the status.
pub struct Refusal {
    pub fail: Fail,
    pub seen: Seen,
}

fn seen_ps_open(e: &PublishSubscribeOpenError) -> Seen {
    match e {
        PublishSubscribeOpenError::ServiceInCorruptedState => Seen::Unreadable,
        PublishSubscribeOpenError::VersionMismatch => Seen::VersionMismatch,
        PublishSubscribeOpenError::IncompatibleTypes => Seen::IncompatibleTypes,
        _ => Seen::Other,
    }
}

fn seen_ps_create(e: &PublishSubscribeCreateError) -> Seen {
    match e {
        PublishSubscribeCreateError::ServiceInCorruptedState => Seen::Unreadable,
        _ => Seen::Other,
    }
}

fn seen_ev_open(e: &EventOpenError) -> Seen {
    match e {
        EventOpenError::ServiceInCorruptedState => Seen::Unreadable,
        EventOpenError::VersionMismatch => Seen::VersionMismatch,
        _ => Seen::Other,
    }
}

fn seen_ev_create(e: &EventCreateError) -> Seen {
    match e {
        EventCreateError::ServiceInCorruptedState => Seen::Unreadable,
        _ => Seen::Other,
    }
}

macro_rules! refusal_from {
    ($ty:ty, $seen:expr) => {
        impl From<$ty> for Refusal {
            fn from(e: $ty) -> Self {
                let seen = $seen(&e);
                Refusal { fail: e.into(), seen }
            }
        }
    };
}

refusal_from!(PublishSubscribeOpenError, seen_ps_open);
refusal_from!(PublishSubscribeCreateError, seen_ps_create);
refusal_from!(PublishSubscribeOpenOrCreateError, |e: &PublishSubscribeOpenOrCreateError| match e {
    PublishSubscribeOpenOrCreateError::PublishSubscribeOpenError(e) => seen_ps_open(e),
    PublishSubscribeOpenOrCreateError::PublishSubscribeCreateError(e) => seen_ps_create(e),
    PublishSubscribeOpenOrCreateError::SystemInFlux => Seen::Other,
});
refusal_from!(EventOpenError, seen_ev_open);
refusal_from!(EventCreateError, seen_ev_create);
refusal_from!(EventOpenOrCreateError, |e: &EventOpenOrCreateError| match e {
    EventOpenOrCreateError::EventOpenError(e) => seen_ev_open(e),
    EventOpenOrCreateError::EventCreateError(e) => seen_ev_create(e),
    EventOpenOrCreateError::SystemInFlux => Seen::Other,
});

/// The fields of a stored static configuration that every release has written.
#[derive(Deserialize)]
struct Origin {
    service_name: String,
    iceoryx2_version: Option<PackageVersion>,
}

/// Why the service `name` of `pattern` belongs to another iceoryx2 release, when
/// its stored static configuration says so: which release made it.
pub fn other_release(config: &Config, name: &ServiceName, pattern: MessagingPattern) -> Option<String> {
    let hash = ServiceHash::new::<<Svc as Service>::ServiceNameHasher>(name, pattern);
    layout::find_static_config(config, &hash, |stored| release_of(stored, name.as_str()))
}

/// The refusal text for a stored static configuration `stored` that names the
/// service `name` and was written by another release than this one.
fn release_of(stored: &[u8], name: &str) -> Option<String> {
    let origin: Origin = <<Svc as Service>::ConfigSerializer as Serialize>::deserialize(stored).ok()?;
    if origin.service_name != name {
        return None;
    }
    let mine = PackageVersion::get();
    match origin.iceoryx2_version {
        Some(v) if v == mine => None,
        Some(v) => Some(format!("the service was created by iceoryx2 {v}, this library uses {mine}")),
        None => Some(format!(
            "the service was created by an iceoryx2 release before 0.10, which records no version; this library uses {mine}"
        )),
    }
}

/// A type detail as a reader sees it.
fn describe_type(t: &TypeDetail) -> String {
    let kind = match t.variant() {
        TypeVariant::Dynamic => "a slice of",
        TypeVariant::FixedSize => "one",
    };
    format!("{kind} {:?} (size {}, alignment {})", t.type_name().to_string(), t.size(), t.alignment())
}

/// The static configuration of an existing service, through the crate's own
/// reader (`Service::details`); None when there is no such service.
fn static_details(config: &Config, name: &ServiceName, pattern: MessagingPattern) -> Result<Option<StaticConfig>, ServiceDetailsError> {
    Ok(Svc::details(name, config, pattern)?.map(|d| d.static_details))
}

/// Turns the refusal of opening the publish-subscribe service `name` into what
/// the caller needs to know: another release (`IOX_E_VERSION_MISMATCH`, naming
/// it), or the types the existing service carries next to those asked for.
pub fn explain_pubsub(n: &NodeH, name: &ServiceName, r: Refusal, payload: &TypeDetail, header: &TypeDetail) -> Fail {
    let config = n.node.config();
    match r.seen {
        Seen::Unreadable | Seen::VersionMismatch => match other_release(config, name, MessagingPattern::PublishSubscribe) {
            Some(why) => Fail::new(IOX_E_VERSION_MISMATCH, why),
            None => r.fail,
        },
        Seen::IncompatibleTypes => {
            let theirs = match static_details(config, name, MessagingPattern::PublishSubscribe) {
                Ok(Some(c)) => match c.messaging_pattern() {
                    StaticPattern::PublishSubscribe(ps) => {
                        let t = ps.message_type_details();
                        format!("the service carries {} with user header {}", describe_type(&t.payload), describe_type(&t.user_header))
                    }
                    // The static configuration's pattern enum is #[non_exhaustive]:
                    // a service found under the publish-subscribe hash is one, but
                    // the match needs this arm.
                    _ => return r.fail,
                },
                _ => return r.fail,
            };
            Fail::new(
                r.fail.code,
                format!("{theirs}; this end asks for {} with user header {}", describe_type(payload), describe_type(header)),
            )
        }
        Seen::Other => r.fail,
    }
}

/// Turns the refusal of opening the event service `name` into what the caller
/// needs to know (see [`explain_pubsub`]).
pub fn explain_event(n: &NodeH, name: &ServiceName, r: Refusal) -> Fail {
    match r.seen {
        Seen::Unreadable | Seen::VersionMismatch => match other_release(n.node.config(), name, MessagingPattern::Event) {
            Some(why) => Fail::new(IOX_E_VERSION_MISMATCH, why),
            None => r.fail,
        },
        Seen::IncompatibleTypes | Seen::Other => r.fail,
    }
}

/// The static configuration of the existing service `name` of `pattern`:
/// `IOX_E_NOT_FOUND` when there is none (or it is still being made),
/// `IOX_E_VERSION_MISMATCH` when another release made it.
fn existing(n: &NodeH, name: &ServiceName, pattern: MessagingPattern) -> Outcome<StaticConfig> {
    let config = n.node.config();
    match static_details(config, name, pattern) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Fail::new(IOX_E_NOT_FOUND, "no such service")),
        Err(e) => match other_release(config, name, pattern) {
            Some(why) => Err(Fail::new(IOX_E_VERSION_MISMATCH, why)),
            None => Err(e.into()),
        },
    }
}

/// Writes the settings of the existing publish-subscribe service `name` without
/// joining it: whoever made it, whatever its types.
#[no_mangle]
pub unsafe extern "C" fn iox_pubsub_describe(
    node: *mut NodeH,
    name: *const u8,
    name_len: usize,
    out: *mut PubSubConfig,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(node, errbuf, errcap, |n| {
        let name = checked_service_name(name, name_len)?;
        let c = existing(n, &name, MessagingPattern::PublishSubscribe)?;
        match c.messaging_pattern() {
            StaticPattern::PublishSubscribe(ps) => put(out, PubSubConfig::of(ps)),
            // #[non_exhaustive] (see explain_pubsub)
            _ => return Err(Fail::new(IOX_E_INTERNAL, "not a publish-subscribe service")),
        }
        Ok(())
    })
}

/// Writes the settings of the existing event service `name` without joining it.
#[no_mangle]
pub unsafe extern "C" fn iox_event_describe(
    node: *mut NodeH,
    name: *const u8,
    name_len: usize,
    out: *mut EventConfig,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(node, errbuf, errcap, |n| {
        let name = checked_service_name(name, name_len)?;
        let c = existing(n, &name, MessagingPattern::Event)?;
        match c.messaging_pattern() {
            StaticPattern::Event(ev) => put(out, EventConfig::of(ev)),
            // #[non_exhaustive] (see explain_pubsub)
            _ => return Err(Fail::new(IOX_E_INTERNAL, "not an event service")),
        }
        Ok(())
    })
}

/// Writes the settings and types of the existing request-response service
/// `name` without joining it.
#[no_mangle]
pub unsafe extern "C" fn iox_reqres_describe(
    node: *mut NodeH,
    name: *const u8,
    name_len: usize,
    out: *mut ReqResDescription,
    errbuf: *mut u8,
    errcap: usize,
) -> i32 {
    on_cold(node, errbuf, errcap, |n| {
        let name = checked_service_name(name, name_len)?;
        let c = existing(n, &name, MessagingPattern::RequestResponse)?;
        match c.messaging_pattern() {
            StaticPattern::RequestResponse(rr) => put(out, ReqResDescription::of(rr)),
            // #[non_exhaustive] (see explain_pubsub)
            _ => return Err(Fail::new(IOX_E_INTERNAL, "not a request-response service")),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // What iceoryx2 0.9.3 stores for a [u8] service (its type details left out): no version.
    const OLD: &str = r#"service_hash = "e9a717a9c44653d6d020043a4757b77bb54d5f86"
service_name = "old-made"
attributes = []

[unique_service_id]
pid = 16109
seconds = 10198
nanoseconds = 18150744
counter = 1

[messaging_pattern.PublishSubscribe]
max_subscribers = 8
max_publishers = 2
max_nodes = 20
history_size = 0
subscriber_max_buffer_size = 2
subscriber_max_borrowed_samples = 2
enable_safe_overflow = true
"#;

    fn stored(name: &str, version: Option<(u16, u16, u16)>) -> String {
        let v = match version {
            Some((a, b, c)) => format!("[iceoryx2_version]\nmajor = {a}\nminor = {b}\npatch = {c}\n\n"),
            None => String::new(),
        };
        format!("service_hash = \"x\"\nservice_name = {name:?}\nunique_service_id = 1\n\n{v}[messaging_pattern.Event]\nmax_notifiers = 1\n")
    }

    #[test]
    fn a_release_before_0_10_is_told_by_its_missing_version() {
        let why = release_of(OLD.as_bytes(), "old-made").expect("another release");
        assert!(why.contains("before 0.10"), "{why}");
        assert_eq!(release_of(OLD.as_bytes(), "other-name"), None, "only the service asked about counts");
    }

    #[test]
    fn a_recorded_version_is_named_unless_it_is_this_one() {
        let why = release_of(stored("s", Some((0, 11, 2))).as_bytes(), "s").expect("another release");
        assert!(why.contains("iceoryx2 0.11.2") && why.contains(&PackageVersion::get().to_string()), "{why}");
        let v = PackageVersion::get();
        assert_eq!(release_of(stored("s", Some((v.major(), v.minor(), v.patch()))).as_bytes(), "s"), None);
    }

    #[test]
    fn damage_is_not_taken_for_another_release() {
        assert_eq!(release_of(b"\x00\xff not a configuration", "s"), None);
        assert_eq!(release_of(b"", "s"), None);
    }

    #[test]
    fn refusals_keep_their_class_and_say_what_they_were() {
        let r = Refusal::from(PublishSubscribeOpenOrCreateError::PublishSubscribeOpenError(
            PublishSubscribeOpenError::ServiceInCorruptedState,
        ));
        assert_eq!((r.fail.code, r.seen), (IOX_E_INTERNAL, Seen::Unreadable));
        let r = Refusal::from(PublishSubscribeOpenError::IncompatibleTypes);
        assert_eq!((r.fail.code, r.seen), (IOX_E_INCOMPATIBLE_TYPE, Seen::IncompatibleTypes));
        let r = Refusal::from(EventOpenOrCreateError::SystemInFlux);
        assert_eq!((r.fail.code, r.seen), (IOX_E_BUSY, Seen::Other));
    }
}
