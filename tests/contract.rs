//! `openapi.json` against the server: the route table the router uses
//! (`ecrlink::api::paths::ROUTES`) and the document name the same routes, methods and
//! API-key needs, both ways; the request schemas carry the validator's limits; and the
//! live server answers 404/405/415 as JSON errors, 405 with `Allow`, every answer with
//! `X-Request-Id`. Headers are read with curl (verified TLS, loopback only).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{World, sale};
use ecrlink::api::guard::Call;
use ecrlink::api::paths::ROUTES;
use ecrlink::api::validate;
use hyper::Method;
use serde_json::{Value, json};

const DOC: &str = include_str!("../src/api/openapi.json");
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("openapi.json is JSON")
}

fn table() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .flat_map(|r| {
            r.methods
                .iter()
                .map(|m| (r.template.to_string(), m.to_lowercase()))
        })
        .collect()
}

fn documented() -> BTreeSet<(String, String)> {
    let doc = doc();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((path.clone(), m.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let (served, doc) = (table(), documented());
    let undocumented: Vec<_> = served.difference(&doc).collect();
    let unserved: Vec<_> = doc.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served, not documented: {undocumented:?}"
    );
    assert!(unserved.is_empty(), "documented, not served: {unserved:?}");
}

#[test]
fn the_api_key_is_required_exactly_where_the_guard_checks_it() {
    let doc = doc();
    for r in ROUTES {
        // A concrete path for the template: every parameter a valid id.
        let path = r
            .template
            .split('/')
            .map(|seg| if seg.starts_with('{') { "T-1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for m in r.methods {
            let op = &doc["paths"][r.template][m.to_lowercase()];
            let call = Call::of(&Method::from_bytes(m.as_bytes()).unwrap(), &path);
            let security = match call {
                Call::Public => json!([]),
                // Open when metricsPublic is true, else the API's rule.
                Call::Monitoring => json!([{"apiKey": []}, {}]),
                _ => json!([{"apiKey": []}]),
            };
            // No `security` at all is the document's default: none.
            let documented = match &op["security"] {
                Value::Null => json!([]),
                given => given.clone(),
            };
            assert_eq!(documented, security, "{m} {}: {call:?}", r.template);
            assert_eq!(
                op["responses"].get("401").is_some(),
                call != Call::Public,
                "{m} {}: a 401 exactly where the key is checked",
                r.template
            );
        }
    }
}

#[test]
fn request_schemas_carry_the_validators_limits() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    let listed: Vec<&str> = schemas["SaleRequest"]["properties"]["currencyCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let accepted: Vec<&str> = validate::currencies().collect();
    assert_eq!(listed, accepted, "the ISO 4217 list is the validator's");
    for name in ["SaleRequest", "UndoRequest"] {
        let props = &schemas[name]["properties"];
        assert_eq!(props, &{
            let mut p = schemas["SaleRequest"]["properties"].clone();
            p["originalTransactionId"] = props["originalTransactionId"].clone();
            p["transactionId"]["example"] = props["transactionId"]["example"].clone();
            p
        });
        for field in ["deviceId", "paymentApp"] {
            assert_eq!(
                props[field]["maxLength"],
                validate::MAX_TEXT_CHARS,
                "{name}.{field}"
            );
            assert_eq!(
                props[field]["pattern"],
                validate::NOT_BLANK_PATTERN,
                "{name}.{field}"
            );
        }
        assert_eq!(props["amount"]["maximum"], validate::MAX_AMOUNT);
        assert_eq!(schemas[name]["additionalProperties"], false);
    }
    // Only refund and void take an original.
    assert_eq!(
        schemas["SaleRequest"]["properties"]["originalTransactionId"]["type"],
        "null"
    );
    assert!(
        schemas["UndoRequest"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("originalTransactionId"))
    );
    let reason = &schemas["Resolution"]["properties"]["reason"];
    assert_eq!(reason["maxLength"], validate::MAX_REASON_CHARS);
    assert_eq!(reason["pattern"], validate::NOT_BLANK_PATTERN);
    // The schema's examples are requests the validator accepts.
    let example = |name: &str| {
        let mut body = serde_json::Map::new();
        for (k, v) in schemas[name]["properties"].as_object().unwrap() {
            if let Some(e) = v.get("example") {
                body.insert(k.clone(), e.clone());
            }
        }
        serde_json::to_vec(&body).unwrap()
    };
    use ecrlink::terminal::wire::TxnKind;
    let sale_example = example("SaleRequest");
    validate::parse_payment(TxnKind::Sale, &sale_example).expect("sale example");
    let refund =
        validate::parse_payment(TxnKind::Refund, &example("UndoRequest")).expect("refund example");
    ecrlink::txn::originals::not_itself(&refund).expect("the example names another original");
}

#[test]
fn sale_links_to_its_lookup() {
    let doc = doc();
    let link = &doc["paths"]["/v1/sale"]["post"]["responses"]["200"]["links"]["GetTransaction"];
    assert_eq!(link["operationId"], "getTransaction");
    assert_eq!(
        link["parameters"]["transactionId"],
        "$response.body#/transactionId"
    );
}

/// `curl -i` of one request: status, lower-cased headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn curl(w: &World, port: u16, args: &[&str], path: &str) -> Answer {
    let url = format!("https://localhost:{port}{path}");
    let ca = w.certs().join(ecrlink::pki::CA_CERT);
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "30", "--cacert"])
        .arg(&ca)
        .args(args)
        .arg(&url)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {args:?} {url}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status: status.parse().unwrap(),
        headers,
        body: body.to_string(),
    }
}

#[tokio::test]
async fn errors_are_json_405_names_allow_and_every_answer_has_a_request_id() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let port = gw.addr.port();
    for r in ROUTES {
        let path = r
            .template
            .replace("{transactionId}", "T-1")
            .replace("{deviceId}", "D");
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if r.methods.contains(&m) {
                continue;
            }
            let a = curl(&w, port, &["-X", m], &path);
            assert_eq!(a.status, 405, "{m} {path}");
            assert_eq!(
                a.header("allow"),
                Some(r.methods.join(", ").as_str()),
                "{m} {path}"
            );
            assert_eq!(a.json()["error"]["code"], "method_not_allowed");
            assert_eq!(a.header("x-request-id").map(str::len), Some(32));
        }
    }
    let a = curl(&w, port, &[], "/v1/nothing/here");
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "not_found");
    assert_eq!(a.header("content-type"), Some("application/json"));

    let body = serde_json::to_string(&sale("CT-1", 1000)).unwrap();
    let a = curl(
        &w,
        port,
        &["-H", "Content-Type: text/plain", "-d", &body],
        "/v1/sale",
    );
    assert_eq!(a.status, 415, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "unsupported_media_type");
    // The refused sale was not started: its id is free.
    let a = curl(
        &w,
        port,
        &[
            "-H",
            "Content-Type: application/json; charset=utf-8",
            "-H",
            "X-Request-Id: pos-till-7-0001",
            "-d",
            &body,
        ],
        "/v1/sale",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["transactionId"], "CT-1");
    assert_eq!(a.header("x-request-id"), Some("pos-till-7-0001"));
    let first = curl(&w, port, &[], "/v1/getVersion");
    let second = curl(&w, port, &["-H", "X-Request-Id: bad id"], "/v1/getVersion");
    let (a, b) = (first.header("x-request-id"), second.header("x-request-id"));
    assert!(a.is_some() && b.is_some() && a != b, "{a:?} {b:?}");
    assert_ne!(b, Some("bad id"));
}

#[tokio::test]
async fn a_refund_naming_itself_is_a_rule_about_the_original() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let mut refund = sale("SELF-1", 1000);
    refund["originalTransactionId"] = json!("SELF-1");
    let (st, err) = w.gateway_client(gw.addr).post("/v1/refund", &refund).await;
    assert_eq!(st.as_u16(), 422, "{err}");
    assert_eq!(err["error"]["code"], "invalid_original");
}
