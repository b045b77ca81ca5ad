//! The p2phttp server. Not written yet.
