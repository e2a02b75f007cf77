//! Client sessions: the registry of connected client ids and existing sessions
//! (`registry`), and one session's subscriptions and offline queue (`session`).

mod registry;
mod session;

pub(crate) use registry::{Opened, SessionClaim, Sessions};
pub(crate) use session::{QueueLimits, Session, State as SessionState};
