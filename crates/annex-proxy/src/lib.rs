//! Proxying the git-annex P2P protocol to repositories behind a gateway.
//!
//! Not implemented yet: this crate is empty. It will route requests by UUID
//! to remotes behind this gateway and fan uploads out to several of them.
