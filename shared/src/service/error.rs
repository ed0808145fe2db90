//! The use cases' error: defined in `crate::error`, below the table layer that returns it too.

pub use crate::error::{FieldError, ServiceError};
