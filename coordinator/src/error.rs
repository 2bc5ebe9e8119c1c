//! The coordinator's domain error, and its one mapping to gRPC status codes (docs/style.md rule 4:
//! the code is chosen where the error is made, by picking the variant).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data dir is (nearly) full: new work is refused until space is freed.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error(transparent)]
    Log(#[from] crate::logs::LogError),
    #[error("coordinator is shutting down")]
    ShuttingDown,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Longest status message sent: a message that quotes a huge request would not fit in the
/// HTTP/2 header that carries it, and the client would see a protocol error instead.
const MAX_STATUS_MESSAGE: usize = 1024;

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let mut msg = e.to_string();
        if msg.len() > MAX_STATUS_MESSAGE {
            let mut end = MAX_STATUS_MESSAGE;
            while !msg.is_char_boundary(end) {
                end -= 1;
            }
            msg.truncate(end);
            msg.push('…');
        }
        match e {
            Error::NotFound(_) => tonic::Status::not_found(msg),
            Error::InvalidArgument(_) => tonic::Status::invalid_argument(msg),
            Error::FailedPrecondition(_) => tonic::Status::failed_precondition(msg),
            Error::AlreadyExists(_) => tonic::Status::already_exists(msg),
            Error::Store(_) => tonic::Status::internal(msg),
            Error::ResourceExhausted(_) => tonic::Status::resource_exhausted(msg),
            Error::Log(crate::logs::LogError::Damaged { .. }) => tonic::Status::data_loss(msg),
            Error::Log(_) => tonic::Status::internal(msg),
            Error::ShuttingDown => tonic::Status::unavailable(msg),
        }
    }
}

impl From<crate::sched::SchedError> for Error {
    fn from(e: crate::sched::SchedError) -> Self {
        use crate::sched::SchedError as S;
        match e {
            S::UnknownRun(n) => Error::NotFound(format!("no run {n}")),
            S::Duplicate(_) => Error::AlreadyExists(e.to_string()),
            S::StaleAttempt { .. } | S::WrongState { .. } => {
                Error::FailedPrecondition(e.to_string())
            }
        }
    }
}

/// Names follow dsari's rule: `^[- A-Za-z0-9_+.:@]+$`, at most 64 characters, not `.` or `..`.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "- _+.:@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid {kind} name {name:?} (must match ^[- A-Za-z0-9_+.:@]+$, at most 64 characters, not . or ..)"
        )))
    }
}
