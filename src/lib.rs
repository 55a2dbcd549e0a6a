//! ecrlink: a cloud-free gateway between a cash register (ECR) and an Android payment
//! terminal on the same LAN. See `ARCHITECTURE.md` for the map of the modules.
// No `unsafe` anywhere on Linux. On Windows `deny` instead of `forbid`, so that the one
// module calling a Win32 C API directly (probe::icmp::windows: IcmpSendEcho) can allow it
// for itself; everything else is still refused.
#![cfg_attr(not(windows), forbid(unsafe_code))]
#![cfg_attr(windows, deny(unsafe_code))]
// A result object moves a few times per transaction, never in a hot loop: boxing it
// to shrink enums would only add noise.
#![allow(clippy::large_enum_variant, clippy::result_large_err)]

pub mod api;
pub mod config;
pub mod constants;
pub mod demo;
pub mod doctor;
pub mod fuzzing;
pub mod histogram;
pub mod http;
pub mod journal;
pub mod log_format;
pub mod pay;
pub mod pin;
pub mod pki;
pub mod probe;
pub mod serve;
pub mod service;
pub mod sim;
pub mod terminal;
pub mod tls;
pub mod tls_check;
pub mod transport;
pub mod txn;
