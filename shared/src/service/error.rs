//! The use cases' error: defined in `crate::error`, below the table layer that returns it too;
//! and the one refusal every use case on a member shares.

use crate::domain::member::Member;
pub use crate::error::{FieldError, ServiceError};
use crate::table::Versioned;

/// The member as read, if it exists and was not erased (410 `member-erased` then).
pub(crate) fn live(found: Option<Versioned<Member>>) -> Result<Versioned<Member>, ServiceError> {
    match found {
        None => Err(ServiceError::NotFound("member")),
        Some(m) if m.value.erased_at.is_some() => Err(ServiceError::MemberErased),
        Some(m) => Ok(m),
    }
}
