//! A repository's description, written to uuid.log through the journal
//! (the log itself is read and written by [`crate::logs::uuid_log`]).

use annex_types::Uuid;

use crate::logs::paths::UUID_LOG;
use crate::logs::uuid_based::ValueError;
use crate::logs::uuid_log;
use crate::{Branch, BranchError, VectorClock};

impl Branch {
    /// Records `description` as `uuid`'s in uuid.log, as `git annex
    /// describe` does (a newline written as `\n`). A description that
    /// cannot be logged (one holding a carriage return) is refused with a
    /// [`ValueError`] and nothing is written. Returns whether the log
    /// changed. The error type is the caller's, made from either error.
    pub fn set_description<E>(&self, uuid: &Uuid, description: &str) -> Result<bool, E>
    where
        E: From<BranchError> + From<ValueError>,
    {
        self.try_change(UUID_LOG, |old| {
            let mut log = uuid_log::parse(old);
            uuid_log::describe(&mut log, uuid.clone(), description, VectorClock::now())?;
            Ok(Some(uuid_log::write(&log)))
        })
    }
}
