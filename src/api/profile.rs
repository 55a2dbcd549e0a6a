//! What a terminal's profile refuses before anything is journaled or sent, and the
//! calls only one profile offers. `comercia-pos` has no void and no cancel (422
//! `unsupported_by_terminal`), takes only euros (400), and passes its report through.

use hyper::{Response, StatusCode};

use super::{Api, ApiError};
use crate::http::{Body, json};
use crate::terminal::comercia::ComerciaClient;
use crate::terminal::comercia::mapping::{self, PROFILE, Refusal};
use crate::terminal::wire::{PaymentRequest, TxnKind};

fn comercia<'a>(api: &'a Api, device: &str) -> Option<&'a ComerciaClient> {
    let terminal = api.terminals.iter().find(|t| t.device_id == device)?;
    terminal.comercia.as_ref()
}

/// A payment the terminal's protocol cannot carry.
pub(super) fn check_payment(
    api: &Api,
    kind: TxnKind,
    req: &PaymentRequest,
) -> Result<(), ApiError> {
    if comercia(api, &req.device_id).is_none() {
        return Ok(());
    }
    match mapping::refusal(kind, req) {
        None => Ok(()),
        Some(Refusal::Unsupported(m)) => Err(ApiError::Unsupported(m)),
        Some(Refusal::Currency(m)) => Err(ApiError::InvalidRequest(m)),
    }
}

/// A cancel of a transaction on a terminal that offers none.
pub(super) async fn check_cancel(api: &Api, id: &str) -> Result<(), ApiError> {
    let Ok(Some(result)) = api.payments.get(id).await else {
        return Ok(());
    };
    match comercia(api, &result.device_id) {
        None => Ok(()),
        Some(_) => Err(ApiError::Unsupported(format!(
            "the {PROFILE} terminal {} offers no cancel: the cardholder cancels at the terminal",
            result.device_id
        ))),
    }
}

/// `GET /v1/terminals/{deviceId}/report`: the terminal's session report, as it wrote it.
pub(super) async fn report(api: &Api, device: &str) -> Option<Result<Response<Body>, ApiError>> {
    let terminal = api.terminals.iter().find(|t| t.device_id == device)?;
    let Some(client) = &terminal.comercia else {
        return Some(Err(ApiError::Unsupported(format!(
            "terminal {device} speaks the instore profile, which has no report; see GET /v1/transactions"
        ))));
    };
    Some(match client.report().await {
        Ok(report) => Ok(json(StatusCode::OK, &report)),
        Err(e) => Err(ApiError::Terminal(e.to_string())),
    })
}
