//! The terminal protocol: its wire types and the HTTPS client that speaks it. Policy
//! (retries, polling, switching) lives in `txn`, not here.

pub mod client;
pub mod comercia;
pub mod wire;

pub use client::{AddressSource, Lookup, TerminalAddress, TerminalClient, TerminalError};
