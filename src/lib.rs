//! ecrlink: a cloud-free gateway between a cash register (ECR) and an Android payment
//! terminal on the same LAN. See `ARCHITECTURE.md` for the map of the modules.
#![forbid(unsafe_code)]

pub mod config;
pub mod constants;
pub mod pki;
