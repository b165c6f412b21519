//! The product's decision rules (../shared/spec/product-rules.md), pure:
//! no I/O, no clock, no database. A current state and a request go in; a
//! new state or a rule violation naming the rule comes out.

pub mod identity;
pub mod roles;
