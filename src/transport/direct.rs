//! The primary link: HTTPS straight to the terminal's REST server.

use std::time::Duration;

use super::{BoxFuture, Transport};
use crate::terminal::wire::{CancelAnswer, Current, PaymentRequest, TxnKind, TxnResult};
use crate::terminal::{Lookup, TerminalClient, TerminalError};

pub struct Direct {
    client: TerminalClient,
}

impl Direct {
    pub fn new(client: TerminalClient) -> Direct {
        Direct { client }
    }
}

impl Transport for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn start<'a>(
        &'a self,
        kind: TxnKind,
        request: &'a PaymentRequest,
        wait: Duration,
    ) -> BoxFuture<'a, Result<TxnResult, TerminalError>> {
        Box::pin(self.client.start(kind, request, wait))
    }

    fn warm(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            let _ = self.client.warm().await;
        })
    }

    fn current(&self) -> BoxFuture<'_, Result<Current, TerminalError>> {
        Box::pin(self.client.current())
    }

    fn lookup<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Lookup, TerminalError>> {
        Box::pin(self.client.lookup(transaction_id))
    }

    fn cancel<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<CancelAnswer, TerminalError>> {
        Box::pin(self.client.cancel(transaction_id))
    }
}
