//! The SCIM 2.0 protocol model (RFC 7643 / RFC 7644): pure data and parsing.

pub mod bulk;
pub mod error;
pub mod etag;
pub mod filter;
pub mod group;
pub mod json;
pub mod patch;
pub mod path;
#[cfg(any(test, feature = "strategies"))]
pub mod proptests;
pub mod query;
pub mod schema;
pub mod user;

pub use error::{ScimError, ScimType};

/// The media type of every response (RFC 7644 §8.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The largest page a list request gets, advertised in ServiceProviderConfig.
pub const MAX_PAGE_SIZE: i64 = 1000;
