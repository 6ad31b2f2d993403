//! The status code of every crate error an export can meet, decided by an
//! exhaustive `match` on the error enum: a new variant in a later iceoryx2
//! release fails to compile here instead of falling into the wrong class.
//!
//! None of these enums is `#[non_exhaustive]` in iceoryx2 0.10.0, so no match
//! has a catch-all arm. Request-response errors are classified as well, for the
//! exports of that pattern.
//!
//! Classes, with the Go error each status becomes:
//! * `DoesNotExist` → not found; `AlreadyExists` → already exists;
//! * a payload or header type that differs → incompatible type;
//! * settings the existing service does not support → incompatible;
//! * `Exceeds…` (ports, nodes, loans of the service) → limit reached;
//! * a service being made, removed or cleaned up → busy;
//! * `VersionMismatch` → version mismatch (a corrupted service whose static
//!   configuration names another release is found to be one in `existing`);
//! * a data segment that cannot be made → out of memory;
//! * the rest (interrupts, corrupted state, internal failures) → internal.

use iceoryx2::node::{NodeCleanupFailure, NodeCreationFailure, NodeListFailure};
use iceoryx2::port::client::RequestSendError;
use iceoryx2::port::listener::{ListenerCreateError, ListenerWaitError};
use iceoryx2::port::notifier::{NotifierCreateError, NotifierNotifyError};
use iceoryx2::port::publisher::PublisherCreateError;
use iceoryx2::port::subscriber::SubscriberCreateError;
use iceoryx2::port::update_connections::ConnectionFailure;
use iceoryx2::port::{LoanError, ReceiveError, SendError};
use iceoryx2::service::builder::event::{EventCreateError, EventOpenError, EventOpenOrCreateError};
use iceoryx2::service::builder::publish_subscribe::{
    PublishSubscribeCreateError, PublishSubscribeOpenError, PublishSubscribeOpenOrCreateError,
};
use iceoryx2::service::builder::request_response::{
    RequestResponseCreateError, RequestResponseOpenError, RequestResponseOpenOrCreateError,
};
use iceoryx2::service::port_factory::client::ClientCreateError;
use iceoryx2::service::port_factory::server::ServerCreateError;
use iceoryx2::service::{ServiceDetailsError, ServiceListError, ServiceRemoveError};
use iceoryx2_cal::named_concept::NamedConceptRemoveError;

use crate::status::*;

/// A crate error that maps to one status code.
pub trait Classify {
    fn status(&self) -> i32;
}

impl Classify for NodeCreationFailure {
    fn status(&self) -> i32 {
        match self {
            NodeCreationFailure::InsufficientPermissions => IOX_E_PERMISSION,
            NodeCreationFailure::InternalError
            | NodeCreationFailure::SystemCorrupted
            | NodeCreationFailure::UnableToGenerateUniqueNodeId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for NodeListFailure {
    fn status(&self) -> i32 {
        match self {
            NodeListFailure::InsufficientPermissions => IOX_E_PERMISSION,
            NodeListFailure::Interrupt | NodeListFailure::InternalError => IOX_E_INTERNAL,
        }
    }
}

impl Classify for NodeCleanupFailure {
    fn status(&self) -> i32 {
        match self {
            NodeCleanupFailure::InsufficientPermissions => IOX_E_PERMISSION,
            NodeCleanupFailure::VersionMismatch => IOX_E_VERSION_MISMATCH,
            NodeCleanupFailure::AnotherInstanceIsCleaningUpTheNode => IOX_E_BUSY,
            NodeCleanupFailure::Interrupt
            | NodeCleanupFailure::InternalError
            | NodeCleanupFailure::ResourcesAlreadyCleanedUp => IOX_E_INTERNAL,
        }
    }
}

impl Classify for ServiceRemoveError {
    fn status(&self) -> i32 {
        match self {
            ServiceRemoveError::InsufficientPermissions => IOX_E_PERMISSION,
            ServiceRemoveError::VersionMismatch => IOX_E_VERSION_MISMATCH,
            ServiceRemoveError::Interrupt | ServiceRemoveError::InternalError => IOX_E_INTERNAL,
        }
    }
}

impl Classify for NamedConceptRemoveError {
    fn status(&self) -> i32 {
        match self {
            NamedConceptRemoveError::InsufficientPermissions => IOX_E_PERMISSION,
            NamedConceptRemoveError::Interrupt | NamedConceptRemoveError::InternalError => IOX_E_INTERNAL,
        }
    }
}

impl Classify for ServiceDetailsError {
    fn status(&self) -> i32 {
        match self {
            ServiceDetailsError::InsufficientPermissions => IOX_E_PERMISSION,
            ServiceDetailsError::VersionMismatch => IOX_E_VERSION_MISMATCH,
            ServiceDetailsError::Interrupt
            | ServiceDetailsError::FailedToOpenStaticServiceInfo
            | ServiceDetailsError::FailedToReadStaticServiceInfo
            | ServiceDetailsError::FailedToDeserializeStaticServiceInfo
            | ServiceDetailsError::ServiceInInconsistentState
            | ServiceDetailsError::InternalError
            | ServiceDetailsError::FailedToAcquireNodeState => IOX_E_INTERNAL,
        }
    }
}

impl Classify for ServiceListError {
    fn status(&self) -> i32 {
        match self {
            ServiceListError::InsufficientPermissions => IOX_E_PERMISSION,
            ServiceListError::InternalError => IOX_E_INTERNAL,
        }
    }
}

impl Classify for PublishSubscribeOpenError {
    fn status(&self) -> i32 {
        use PublishSubscribeOpenError as E;
        match self {
            E::DoesNotExist => IOX_E_NOT_FOUND,
            E::IncompatibleTypes => IOX_E_INCOMPATIBLE_TYPE,
            E::IncompatibleMessagingPattern
            | E::IncompatibleAttributes
            | E::IncompatibleOverflowBehavior
            | E::DoesNotSupportRequestedMinBufferSize
            | E::DoesNotSupportRequestedMinHistorySize
            | E::DoesNotSupportRequestedMinSubscriberBorrowedSamples
            | E::DoesNotSupportRequestedAmountOfPublishers
            | E::DoesNotSupportRequestedAmountOfSubscribers
            | E::DoesNotSupportRequestedAmountOfNodes => IOX_E_INCOMPATIBLE,
            E::ExceedsMaxNumberOfNodes => IOX_E_LIMIT_REACHED,
            E::InsufficientPermissions => IOX_E_PERMISSION,
            E::HangsInCreation | E::IsMarkedForDestruction => IOX_E_BUSY,
            E::VersionMismatch => IOX_E_VERSION_MISMATCH,
            E::Interrupt
            | E::InternalFailure
            | E::ServiceInCorruptedState
            | E::UnableToCreateServiceTag
            | E::UnableToAcquireTypeDefinition
            | E::InvalidTypeDefinition => IOX_E_INTERNAL,
        }
    }
}

impl Classify for PublishSubscribeCreateError {
    fn status(&self) -> i32 {
        use PublishSubscribeCreateError as E;
        match self {
            E::AlreadyExists => IOX_E_ALREADY_EXISTS,
            E::SubscriberBufferMustBeLargerThanHistorySize => IOX_E_INCOMPATIBLE,
            E::InsufficientPermissions => IOX_E_PERMISSION,
            E::IsBeingCreatedByAnotherInstance | E::HangsInCreation => IOX_E_BUSY,
            E::Interrupt
            | E::ServiceInCorruptedState
            | E::InternalFailure
            | E::UnableToCreateServiceTag
            | E::ServiceConfigCouldNotBeCreated
            | E::UnableToAcquireTypeDefinition
            | E::InvalidTypeDefinition
            | E::UnableToGenerateUniqueServiceId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for PublishSubscribeOpenOrCreateError {
    fn status(&self) -> i32 {
        match self {
            PublishSubscribeOpenOrCreateError::PublishSubscribeOpenError(e) => e.status(),
            PublishSubscribeOpenOrCreateError::PublishSubscribeCreateError(e) => e.status(),
            PublishSubscribeOpenOrCreateError::SystemInFlux => IOX_E_BUSY,
        }
    }
}

impl Classify for EventOpenError {
    fn status(&self) -> i32 {
        use EventOpenError as E;
        match self {
            E::DoesNotExist => IOX_E_NOT_FOUND,
            E::IncompatibleMessagingPattern
            | E::IncompatibleAttributes
            | E::IncompatibleDeadline
            | E::IncompatibleNotifierCreatedEvent
            | E::IncompatibleNotifierDroppedEvent
            | E::IncompatibleNotifierDeadEvent
            | E::DoesNotSupportRequestedAmountOfNotifiers
            | E::DoesNotSupportRequestedAmountOfListeners
            | E::DoesNotSupportRequestedMaxEventId
            | E::DoesNotSupportRequestedAmountOfNodes => IOX_E_INCOMPATIBLE,
            E::ExceedsMaxNumberOfNodes => IOX_E_LIMIT_REACHED,
            E::InsufficientPermissions => IOX_E_PERMISSION,
            E::HangsInCreation | E::IsMarkedForDestruction => IOX_E_BUSY,
            E::VersionMismatch => IOX_E_VERSION_MISMATCH,
            E::Interrupt | E::ServiceInCorruptedState | E::InternalFailure | E::UnableToCreateServiceTag => {
                IOX_E_INTERNAL
            }
        }
    }
}

impl Classify for EventCreateError {
    fn status(&self) -> i32 {
        use EventCreateError as E;
        match self {
            E::AlreadyExists => IOX_E_ALREADY_EXISTS,
            E::InsufficientPermissions => IOX_E_PERMISSION,
            E::IsBeingCreatedByAnotherInstance => IOX_E_BUSY,
            // a notifier created/dropped/dead event id above the service's largest id
            E::EventIdExceedsMaxSupportedValue => IOX_E_EVENT_ID,
            E::Interrupt
            | E::ServiceInCorruptedState
            | E::InternalFailure
            | E::UnableToCreateServiceTag
            | E::ServiceConfigCouldNotBeCreated
            | E::UnableToGenerateUniqueServiceId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for EventOpenOrCreateError {
    fn status(&self) -> i32 {
        match self {
            EventOpenOrCreateError::EventOpenError(e) => e.status(),
            EventOpenOrCreateError::EventCreateError(e) => e.status(),
            EventOpenOrCreateError::SystemInFlux => IOX_E_BUSY,
        }
    }
}

impl Classify for RequestResponseOpenError {
    fn status(&self) -> i32 {
        use RequestResponseOpenError as E;
        match self {
            E::DoesNotExist => IOX_E_NOT_FOUND,
            E::IncompatibleRequestOrResponseType => IOX_E_INCOMPATIBLE_TYPE,
            E::IncompatibleAttributes
            | E::IncompatibleMessagingPattern
            | E::IncompatibleOverflowBehaviorForRequests
            | E::IncompatibleOverflowBehaviorForResponses
            | E::IncompatibleBehaviorForFireAndForgetRequests
            | E::DoesNotSupportRequestedAmountOfClientRequestLoans
            | E::DoesNotSupportRequestedAmountOfActiveRequestsPerClient
            | E::DoesNotSupportRequestedResponseBufferSize
            | E::DoesNotSupportRequestedAmountOfServers
            | E::DoesNotSupportRequestedAmountOfClients
            | E::DoesNotSupportRequestedAmountOfNodes
            | E::DoesNotSupportRequestedAmountOfBorrowedResponsesPerPendingResponse => IOX_E_INCOMPATIBLE,
            E::ExceedsMaxNumberOfNodes => IOX_E_LIMIT_REACHED,
            E::InsufficientPermissions => IOX_E_PERMISSION,
            E::HangsInCreation | E::IsMarkedForDestruction => IOX_E_BUSY,
            E::VersionMismatch => IOX_E_VERSION_MISMATCH,
            E::Interrupt
            | E::InternalFailure
            | E::ServiceInCorruptedState
            | E::UnableToCreateServiceTag
            | E::UnableToAcquireTypeDefinition
            | E::InvalidTypeDefinition => IOX_E_INTERNAL,
        }
    }
}

impl Classify for RequestResponseCreateError {
    fn status(&self) -> i32 {
        use RequestResponseCreateError as E;
        match self {
            E::AlreadyExists => IOX_E_ALREADY_EXISTS,
            E::InsufficientPermissions => IOX_E_PERMISSION,
            E::IsBeingCreatedByAnotherInstance | E::HangsInCreation => IOX_E_BUSY,
            E::Interrupt
            | E::InternalFailure
            | E::ServiceInCorruptedState
            | E::UnableToCreateServiceTag
            | E::ServiceConfigCouldNotBeCreated
            | E::UnableToAcquireTypeDefinition
            | E::InvalidTypeDefinition
            | E::UnableToGenerateUniqueServiceId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for RequestResponseOpenOrCreateError {
    fn status(&self) -> i32 {
        match self {
            RequestResponseOpenOrCreateError::RequestResponseOpenError(e) => e.status(),
            RequestResponseOpenOrCreateError::RequestResponseCreateError(e) => e.status(),
            RequestResponseOpenOrCreateError::SystemInFlux => IOX_E_BUSY,
        }
    }
}

impl Classify for PublisherCreateError {
    fn status(&self) -> i32 {
        match self {
            PublisherCreateError::ExceedsMaxSupportedPublishers => IOX_E_LIMIT_REACHED,
            PublisherCreateError::UnableToCreateDataSegment => IOX_E_OUT_OF_MEMORY,
            PublisherCreateError::FailedToDeployThreadsafetyPolicy
            | PublisherCreateError::UnableToCreatePortTag
            | PublisherCreateError::UnableToGenerateUniquePublisherId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for SubscriberCreateError {
    fn status(&self) -> i32 {
        use SubscriberCreateError as E;
        match self {
            E::ExceedsMaxSupportedSubscribers => IOX_E_LIMIT_REACHED,
            E::BufferSizeExceedsMaxSupportedBufferSizeOfService | E::HistoryRequestExceedsHistorySizeOfService => {
                IOX_E_INCOMPATIBLE
            }
            E::HistoryRequestExceedsBufferSizeOfSubscriber => IOX_E_INVALID_ARGUMENT,
            E::FailedToDeployThreadsafetyPolicy | E::UnableToCreatePortTag | E::UnableToGenerateUniqueSubscriberId => {
                IOX_E_INTERNAL
            }
        }
    }
}

impl Classify for NotifierCreateError {
    fn status(&self) -> i32 {
        match self {
            NotifierCreateError::ExceedsMaxSupportedNotifiers => IOX_E_LIMIT_REACHED,
            NotifierCreateError::FailedToDeployThreadsafetyPolicy
            | NotifierCreateError::UnableToCreatePortTag
            | NotifierCreateError::UnableToGenerateUniqueNotifierId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for NotifierNotifyError {
    fn status(&self) -> i32 {
        match self {
            NotifierNotifyError::EventIdOutOfBounds => IOX_E_EVENT_ID,
            NotifierNotifyError::InvalidListenerKey => IOX_E_INVALID_ARGUMENT,
            NotifierNotifyError::MissedDeadline | NotifierNotifyError::UnableToAcquireElapsedTime => IOX_E_INTERNAL,
        }
    }
}

impl Classify for ListenerCreateError {
    fn status(&self) -> i32 {
        match self {
            ListenerCreateError::ExceedsMaxSupportedListeners => IOX_E_LIMIT_REACHED,
            ListenerCreateError::ResourceCreationFailed
            | ListenerCreateError::FailedToDeployThreadsafetyPolicy
            | ListenerCreateError::UnableToCreatePortTag
            | ListenerCreateError::UnableToGenerateUniqueListenerId => IOX_E_INTERNAL,
        }
    }
}

impl Classify for ListenerWaitError {
    fn status(&self) -> i32 {
        match self {
            ListenerWaitError::ContractViolation
            | ListenerWaitError::InternalFailure
            | ListenerWaitError::InterruptSignal => IOX_E_INTERNAL,
        }
    }
}

impl Classify for ClientCreateError {
    fn status(&self) -> i32 {
        use ClientCreateError as E;
        match self {
            E::ExceedsMaxSupportedClients | E::MaxActiveRequestsExceedsMaxSupportedActiveRequestsOfService => {
                IOX_E_LIMIT_REACHED
            }
            E::UnableToCreateDataSegment => IOX_E_OUT_OF_MEMORY,
            E::FailedToDeployThreadsafetyPolicy | E::UnableToCreatePortTag | E::UnableToGenerateUniqueClientId => {
                IOX_E_INTERNAL
            }
        }
    }
}

impl Classify for ServerCreateError {
    fn status(&self) -> i32 {
        use ServerCreateError as E;
        match self {
            E::ExceedsMaxSupportedServers => IOX_E_LIMIT_REACHED,
            E::UnableToCreateDataSegment => IOX_E_OUT_OF_MEMORY,
            E::FailedToDeployThreadsafetyPolicy | E::UnableToCreatePortTag | E::UnableToGenerateUniqueServerId => {
                IOX_E_INTERNAL
            }
        }
    }
}

impl Classify for LoanError {
    fn status(&self) -> i32 {
        match self {
            LoanError::ExceedsMaxLoanSize => IOX_E_TOO_LARGE,
            LoanError::ExceedsMaxLoans => IOX_E_TOO_MANY_LOANS,
            LoanError::OutOfMemory => IOX_E_OUT_OF_MEMORY,
            LoanError::InternalFailure => IOX_E_INTERNAL,
        }
    }
}

impl Classify for SendError {
    fn status(&self) -> i32 {
        match self {
            SendError::UnableToDeliver => IOX_E_WOULD_BLOCK,
            SendError::LoanError(e) => e.status(),
            SendError::ConnectionBrokenSinceSenderNoLongerExists
            | SendError::ConnectionCorrupted
            | SendError::ConnectionError(_) => IOX_E_CONNECTION,
            SendError::InternalError => IOX_E_INTERNAL,
        }
    }
}

impl Classify for RequestSendError {
    fn status(&self) -> i32 {
        match self {
            RequestSendError::ExceedsMaxActiveRequests => IOX_E_LIMIT_REACHED,
            RequestSendError::SendError(e) => e.status(),
        }
    }
}

impl Classify for ReceiveError {
    fn status(&self) -> i32 {
        match self {
            ReceiveError::ExceedsMaxBorrows => IOX_E_TOO_MANY_LOANS,
            ReceiveError::ConnectionFailure(e) => e.status(),
        }
    }
}

impl Classify for ConnectionFailure {
    fn status(&self) -> i32 {
        match self {
            ConnectionFailure::FailedToEstablishConnection(_) | ConnectionFailure::UnableToMapSendersDataSegment(_) => {
                IOX_E_CONNECTION
            }
        }
    }
}

/// The status of a loan failure (hot path).
pub fn loan_error(e: LoanError) -> i32 {
    e.status()
}

/// The status of a send failure (hot path).
pub fn send_error(e: SendError) -> i32 {
    e.status()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_errors_fall_into_the_classes_go_tells_apart() {
        use PublishSubscribeOpenError as P;
        assert_eq!(P::DoesNotExist.status(), IOX_E_NOT_FOUND);
        assert_eq!(P::IncompatibleTypes.status(), IOX_E_INCOMPATIBLE_TYPE);
        assert_eq!(P::IncompatibleOverflowBehavior.status(), IOX_E_INCOMPATIBLE);
        assert_eq!(P::DoesNotSupportRequestedMinBufferSize.status(), IOX_E_INCOMPATIBLE);
        assert_eq!(P::ExceedsMaxNumberOfNodes.status(), IOX_E_LIMIT_REACHED);
        assert_eq!(P::HangsInCreation.status(), IOX_E_BUSY);
        assert_eq!(P::IsMarkedForDestruction.status(), IOX_E_BUSY);
        assert_eq!(P::VersionMismatch.status(), IOX_E_VERSION_MISMATCH);
        assert_eq!(P::ServiceInCorruptedState.status(), IOX_E_INTERNAL);
        assert_eq!(P::InsufficientPermissions.status(), IOX_E_PERMISSION);
        assert_eq!(EventOpenError::IncompatibleNotifierDeadEvent.status(), IOX_E_INCOMPATIBLE);
        assert_eq!(EventOpenError::DoesNotExist.status(), IOX_E_NOT_FOUND);
        assert_eq!(RequestResponseOpenError::IncompatibleRequestOrResponseType.status(), IOX_E_INCOMPATIBLE_TYPE);
    }

    #[test]
    fn open_or_create_errors_take_the_class_of_what_they_wrap() {
        use PublishSubscribeOpenOrCreateError as O;
        assert_eq!(O::PublishSubscribeOpenError(PublishSubscribeOpenError::IncompatibleTypes).status(), IOX_E_INCOMPATIBLE_TYPE);
        assert_eq!(O::PublishSubscribeCreateError(PublishSubscribeCreateError::AlreadyExists).status(), IOX_E_ALREADY_EXISTS);
        assert_eq!(O::SystemInFlux.status(), IOX_E_BUSY);
        assert_eq!(EventOpenOrCreateError::EventCreateError(EventCreateError::IsBeingCreatedByAnotherInstance).status(), IOX_E_BUSY);
        assert_eq!(EventOpenOrCreateError::EventCreateError(EventCreateError::EventIdExceedsMaxSupportedValue).status(), IOX_E_EVENT_ID);
        assert_eq!(
            RequestResponseOpenOrCreateError::RequestResponseOpenError(RequestResponseOpenError::VersionMismatch).status(),
            IOX_E_VERSION_MISMATCH
        );
    }

    #[test]
    fn port_errors_say_what_the_caller_can_do() {
        assert_eq!(PublisherCreateError::ExceedsMaxSupportedPublishers.status(), IOX_E_LIMIT_REACHED);
        assert_eq!(PublisherCreateError::UnableToCreateDataSegment.status(), IOX_E_OUT_OF_MEMORY);
        assert_eq!(SubscriberCreateError::BufferSizeExceedsMaxSupportedBufferSizeOfService.status(), IOX_E_INCOMPATIBLE);
        assert_eq!(NotifierCreateError::ExceedsMaxSupportedNotifiers.status(), IOX_E_LIMIT_REACHED);
        assert_eq!(ListenerCreateError::ExceedsMaxSupportedListeners.status(), IOX_E_LIMIT_REACHED);
        assert_eq!(NotifierNotifyError::EventIdOutOfBounds.status(), IOX_E_EVENT_ID);
        assert_eq!(NodeCreationFailure::InsufficientPermissions.status(), IOX_E_PERMISSION);
        assert_eq!(ServiceRemoveError::VersionMismatch.status(), IOX_E_VERSION_MISMATCH);
    }

    #[test]
    fn hot_path_errors_keep_their_meaning() {
        assert_eq!(loan_error(LoanError::ExceedsMaxLoanSize), IOX_E_TOO_LARGE);
        assert_eq!(loan_error(LoanError::ExceedsMaxLoans), IOX_E_TOO_MANY_LOANS);
        assert_eq!(loan_error(LoanError::OutOfMemory), IOX_E_OUT_OF_MEMORY);
        assert_eq!(send_error(SendError::UnableToDeliver), IOX_E_WOULD_BLOCK);
        assert_eq!(send_error(SendError::LoanError(LoanError::OutOfMemory)), IOX_E_OUT_OF_MEMORY);
        assert_eq!(send_error(SendError::ConnectionCorrupted), IOX_E_CONNECTION);
        assert_eq!(ReceiveError::ExceedsMaxBorrows.status(), IOX_E_TOO_MANY_LOANS);
        assert_eq!(RequestSendError::SendError(SendError::UnableToDeliver).status(), IOX_E_WOULD_BLOCK);
    }

    #[test]
    fn a_crate_error_becomes_a_failure_with_its_variant_as_text() {
        let f = crate::guard::Fail::from(PublishSubscribeOpenError::HangsInCreation);
        assert_eq!(f.code, IOX_E_BUSY);
        assert_eq!(f.text, "HangsInCreation");
    }
}
