//! The git-annex branch: its logs, read and written as git-annex 10 does.
//!
//! Not implemented yet: this crate is empty. It will hold pure parse and
//! serialise functions for every log on the branch, and reading and writing
//! the branch itself.
