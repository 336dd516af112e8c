//! Why a control operation was refused, and the HTTP status the admin API answers it with.

use switchyard_config::ConfigErrors;
use switchyard_core::ServiceDecision;

/// Why a control operation was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    /// No service has that name.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// The service has no pool of that name.
    #[error("service `{service}` has no pool `{pool}` (pools: {known})")]
    UnknownPool {
        /// The service.
        service: String,
        /// The pool asked for.
        pool: String,
        /// The pools it has.
        known: String,
    },
    /// The shorthand endpoints need exactly one service.
    #[error(
        "this config has several services ({0}); name one: add \"service\": \"NAME\" to the body, call /services/NAME/… instead, or pass --service NAME to the CLI"
    )]
    AmbiguousService(String),
    /// The target pool has no healthy server and `force` was not given.
    #[error(
        "pool `{pool}` of service `{service}` has no healthy server; pass force (CLI: --force) to switch anyway"
    )]
    Unhealthy {
        /// The service.
        service: String,
        /// The target pool.
        pool: String,
    },
    /// A rollback with nothing to roll back to.
    #[error("service `{0}` has no previous colour to roll back to")]
    NoPrevious(String),
    /// The request was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The new config is invalid; the running one stays.
    #[error("invalid config:\n{0}")]
    InvalidConfig(ConfigErrors),
    /// There is no file to re-read.
    #[error("running on the embedded default config: there is no file to reload")]
    NoConfigFile,
    /// The decision could not be persisted; nothing was changed.
    #[error("could not persist the decision: {0}")]
    Persist(String),
    /// The new config's TLS certificates could not be loaded; the running config and
    /// certificates stay.
    #[error("TLS: {0}")]
    Tls(String),
    /// A binary upgrade is under way: decisions wait for the new process (so the state has one
    /// writer and the new process starts from the decisions it was handed).
    #[error("a binary upgrade is under way; try again on the new process in a moment")]
    Upgrading,
    /// Fleet mode: another instance changed the service first; nothing was changed here.
    #[error("another instance of the fleet changed service `{service}` first; nothing was changed (its decision now: {})", current.as_ref().map_or_else(|| "none".to_string(), |d| d.active.clone()))]
    Conflict {
        /// The service.
        service: String,
        /// Its decision now, as the fleet holds it.
        current: Option<Box<ServiceDecision>>,
    },
    /// Fleet mode: etcd does not answer, so no instance would see the change; nothing was
    /// changed (every instance keeps serving its last decisions).
    #[error(
        "the fleet's store (etcd) is unreachable, so the change would reach no other instance; nothing was changed: {0}"
    )]
    FleetUnavailable(String),
}

impl ControlError {
    /// The HTTP status the admin API answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::UnknownService(_) | ControlError::UnknownPool { .. } => 404,
            ControlError::AmbiguousService(_)
            | ControlError::BadRequest(_)
            | ControlError::InvalidConfig(_)
            | ControlError::Tls(_)
            | ControlError::NoConfigFile => 400,
            ControlError::Unhealthy { .. }
            | ControlError::NoPrevious(_)
            | ControlError::Upgrading
            | ControlError::Conflict { .. } => 409,
            ControlError::Persist(_) => 500,
            ControlError::FleetUnavailable(_) => 503,
        }
    }
}
