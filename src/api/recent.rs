//! `GET /v1/transactions?status=…`: the recent transactions of one status (the status
//! page's filter, and an operator's "which ones are still unknown?").

use super::ApiError;
use crate::terminal::wire::TxnStatus;

/// The `status` query parameter, when given.
pub(super) fn status_filter(query: Option<&str>) -> Result<Option<TxnStatus>, ApiError> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("status=") {
            return TxnStatus::parse(v).map(Some).ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "status: must be one of approved, declined, cancelled, failed, in_progress, \
                     unknown; got {v:?}"
                ))
            });
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_filter_is_read_and_checked() {
        assert_eq!(status_filter(None).unwrap(), None);
        assert_eq!(status_filter(Some("limit=5")).unwrap(), None);
        assert_eq!(
            status_filter(Some("limit=5&status=unknown")).unwrap(),
            Some(TxnStatus::Unknown)
        );
        assert!(status_filter(Some("status=nope")).is_err());
    }
}
