//! The p2phttp client. Not written yet.
