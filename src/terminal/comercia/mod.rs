//! The `comercia-pos` profile: the payment app's own REST API on the terminal
//! (`/v1/transactions/payment` answered at once with `1001`, then `/status` polls by
//! `orderId`, amounts in decimal euros, an `X-SOURCE` header, the vendor's own CA and
//! server name). `mapping` is the one table between that API and ecrlink; `client`
//! speaks it over HTTPS; `transport` puts it behind the same [`Transport`] trait as the
//! InStore profile, so one supervisor and its invariants drive both.
//!
//! [`Transport`]: crate::transport::Transport

pub mod client;
pub mod lane;
pub mod mapping;
pub mod transport;

pub use client::ComerciaClient;
pub use transport::{Comercia, Records};
