//! The route table of the integrator API: every path the server answers and its
//! methods. The router matches requests against it (404 for a path not in it, 405 with
//! `Allow` for a method not listed), and `tests/contract.rs` checks that `openapi.json`
//! documents exactly these routes, both ways. Who may call a route
//! (keys, origins) is `guard`'s rule, checked against the document by the same test.

/// One route: a path template as OpenAPI writes it (`{name}` for a parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub template: &'static str,
    pub methods: &'static [&'static str],
}

const fn route(template: &'static str, methods: &'static [&'static str]) -> Route {
    Route { template, methods }
}

pub const STATUS_PAGE: &str = "/";
pub const OPENAPI: &str = "/openapi.json";
pub const METRICS: &str = "/metrics";
pub const HEALTHZ: &str = "/healthz";
pub const VERSION: &str = "/v1/getVersion";
pub const SALE: &str = "/v1/sale";
pub const REFUND: &str = "/v1/refund";
pub const VOID: &str = "/v1/void";
pub const TRANSACTIONS: &str = "/v1/transactions";
pub const TRANSACTION: &str = "/v1/transactions/{transactionId}";
pub const EVENTS: &str = "/v1/transactions/{transactionId}/events";
pub const CANCEL: &str = "/v1/transactions/{transactionId}/cancel";
pub const RESOLVE: &str = "/v1/transactions/{transactionId}/resolve";
pub const TERMINALS: &str = "/v1/terminals";
pub const TERMINAL: &str = "/v1/terminals/{deviceId}";
pub const REPORT: &str = "/v1/terminals/{deviceId}/report";

const GET: &[&str] = &["GET"];
const POST: &[&str] = &["POST"];

/// Every route of the API. A literal segment wins over a parameter, so the order
/// here does not matter.
pub const ROUTES: &[Route] = &[
    route(STATUS_PAGE, GET),
    route(OPENAPI, GET),
    route(METRICS, GET),
    route(HEALTHZ, GET),
    route(VERSION, GET),
    route(SALE, POST),
    route(REFUND, POST),
    route(VOID, POST),
    route(TRANSACTIONS, GET),
    route(TRANSACTION, GET),
    route(EVENTS, GET),
    route(CANCEL, POST),
    route(RESOLVE, POST),
    route(TERMINALS, GET),
    route(TERMINAL, GET),
    route(REPORT, GET),
];

/// A request path matched to its route, with the parameters in template order.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched<'a> {
    pub route: &'static Route,
    pub params: Vec<&'a str>,
}

impl Matched<'_> {
    /// The `Allow` header value for this route.
    pub fn allow(&self) -> String {
        self.route.methods.join(", ")
    }

    pub fn allows(&self, method: &str) -> bool {
        self.route.methods.contains(&method)
    }
}

/// Finds the route of `segments` (the path split on `/`, empty parts dropped).
pub fn find<'a>(segments: &[&'a str]) -> Option<Matched<'a>> {
    let mut best: Option<(usize, Matched<'a>)> = None;
    for route in ROUTES {
        let parts = template_segments(route.template);
        if parts.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let mut literals = 0;
        let fits = parts.iter().zip(segments).all(|(part, seg)| {
            if part.starts_with('{') {
                params.push(*seg);
                true
            } else {
                literals += 1;
                part == seg
            }
        });
        if fits && best.as_ref().is_none_or(|(n, _)| literals > *n) {
            best = Some((literals, Matched { route, params }));
        }
    }
    best.map(|(_, m)| m)
}

fn template_segments(template: &str) -> Vec<&str> {
    template.split('/').filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_win_over_parameters_and_params_are_returned() {
        let m = find(&["v1", "transactions", "T-1", "cancel"]).unwrap();
        assert_eq!(m.route.template, CANCEL);
        assert_eq!(m.params, vec!["T-1"]);
        assert_eq!(
            find(&["v1", "terminals"]).unwrap().route.template,
            TERMINALS
        );
        assert_eq!(find(&[]).unwrap().route.template, STATUS_PAGE);
        assert!(find(&["v1", "nope"]).is_none());
        assert!(find(&["v1", "transactions", "T", "x"]).is_none());
    }

    #[test]
    fn allow_lists_the_route_methods() {
        let m = find(&["v1", "sale"]).unwrap();
        assert_eq!(m.allow(), "POST");
        assert!(m.allows("POST") && !m.allows("GET"));
    }

    #[test]
    fn every_template_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[i + 1..].iter().all(|b| b.template != a.template),
                "{}",
                a.template
            );
        }
    }
}
