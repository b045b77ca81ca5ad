//! git-annex preferred and required content: the expression language,
//! compiled once and evaluated for any repository over the git-annex
//! branch, with balanced placement identical to git-annex 10.20250416's.
//!
//! ```
//! use annex_preferred::Expression;
//!
//! // Expressions are read as git-annex reads them.
//! assert!(Expression::parse("include=*.jpg and (copies=backup:2 or largerthan=1GB)").is_ok());
//! assert!(Expression::parse("copies=notanumber").is_err());
//! ```
//!
//! - [`Expression`]: parse and check an expression as `git annex wanted`
//!   does.
//! - [`Facts`]: what decisions read about the repositories (groups, trust,
//!   numcopies, maxsizes, expressions), loaded once from the branch.
//! - [`Policies`]: every repository's preferred and required content,
//!   compiled ([`Policy`]).
//! - [`Decider`]: evaluates a policy for a key ([`Subject`]), reading
//!   per-key information from a [`KeyInfo`] (the branch, or memory) and
//!   sizes from [`LiveSizes`], which also counts content in flight.
#![warn(missing_docs)]

pub mod balanced;
pub mod eval;
pub mod facts;
pub mod glob;
pub mod keys;
pub mod live;
pub mod metadata;
pub mod policy;
pub mod standard;
pub mod syntax;
pub mod term;
pub mod wanted;

mod expression;

/// Hash maps keyed by UUIDs and keys, read on every decision: a fast
/// hasher, since nothing here is keyed by what a peer chooses to flood.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use eval::{Decider, EvalError, KeyInfo, Settings, Subject, SubjectKind, Verdict};
pub use expression::{check_expression, Expression, ParseError};
pub use facts::Facts;
pub use keys::{BranchKeys, MemoryKeys};
pub use live::{InFlight, LiveSizes, Reservation, ReservationId};
pub use policy::{Expansion, Policies, Policy};
pub use standard::StandardGroup;
pub use wanted::Wants;
