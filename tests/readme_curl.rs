//! README.md's curl examples, extracted from the README itself and run in order against a
//! real gateway and simulator on loopback, with verified TLS (`--cacert`) — so the doc
//! cannot drift from the server. Each answer must be one `openapi.json` documents for that
//! operation, with the documented media type; JSON bodies must parse. A README that names
//! a path or method the server does not have fails here (404/405 are not acceptable).

mod common;

use std::process::Command;

use common::World;
use ecrlink::api::paths;
use serde_json::{Value, json};

const README: &str = include_str!("../README.md");
const DOC: &str = include_str!("../src/api/openapi.json");
const README_CA: &str = "certs/ca.pem";
const README_BASE: &str = "https://localhost:3000";

/// The `curl …` commands of the README's sh code blocks, continuation lines and quoted
/// strings spanning lines joined.
fn curl_commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut current: Option<String> = None;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_sh = !in_sh && matches!(trimmed.trim_start_matches('`'), "sh" | "bash" | "console");
            continue;
        }
        if !in_sh {
            continue;
        }
        match current.as_mut() {
            Some(cmd) => {
                cmd.push('\n');
                cmd.push_str(line);
            }
            None if trimmed.starts_with("curl ") => current = Some(trimmed.to_string()),
            None => continue,
        }
        let cmd = current.as_ref().unwrap();
        let open_quote = cmd.matches('\'').count() % 2 == 1;
        if !open_quote && !cmd.ends_with('\\') {
            out.push(current.take().unwrap());
        }
    }
    out
}

#[test]
fn the_extractor_joins_continued_and_quoted_lines() {
    let md = "```sh\ncurl a \\\n  b\ncurl -d '{\n \"x\": 1 }'\n```\n```json\ncurl no\n```\n";
    assert_eq!(
        curl_commands(md),
        vec![
            "curl a \\\n  b".to_string(),
            "curl -d '{\n \"x\": 1 }'".into()
        ]
    );
}

fn method_and_path(cmd: &str) -> (String, String) {
    let method = if let Some(rest) = cmd.split("-X ").nth(1) {
        rest.split_whitespace().next().unwrap().to_string()
    } else if cmd.contains(" -d ") || cmd.contains("\n  -d ") {
        "POST".into()
    } else {
        "GET".into()
    };
    let after = cmd
        .split(README_BASE)
        .nth(1)
        .expect("the README's base URL");
    let path = after
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .next()
        .unwrap();
    (method, path.split('?').next().unwrap().to_string())
}

#[tokio::test]
async fn every_readme_curl_example_runs_and_gets_a_documented_answer() {
    let commands = curl_commands(README);
    assert!(
        commands.len() >= 5,
        "README's curl examples not found: {commands:?}"
    );
    let doc: Value = serde_json::from_str(DOC).unwrap();
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let ca = w.certs().join(ecrlink::pki::CA_CERT);
    let base = format!("https://localhost:{}", gw.addr.port());
    let body_file = w.path("curl-body");
    for cmd in &commands {
        let (method, path) = method_and_path(cmd);
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let route = paths::find(&segs)
            .unwrap_or_else(|| panic!("README names a path the server lacks: {cmd}"))
            .route;
        assert!(
            route.methods.contains(&method.as_str()),
            "{method} {path}: {cmd}"
        );
        let runnable = cmd
            .replace(README_CA, &ca.display().to_string())
            .replace(README_BASE, &base);
        let script = format!(
            "{runnable} -sS -o '{}' -w '%{{http_code}} %{{content_type}}'",
            body_file.display()
        );
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{cmd}\n{out:?}");
        let written = String::from_utf8_lossy(&out.stdout).to_string();
        let (status, content_type) = written.split_once(' ').unwrap();
        let op = &doc["paths"][route.template][method.to_lowercase()];
        let documented = &op["responses"][status];
        assert!(
            documented.is_object(),
            "{cmd}: {status} is not documented for {method} {}",
            route.template
        );
        assert!(
            !["404", "405", "415"].contains(&status) || route.template.contains('{'),
            "{cmd}: the README's call is refused with {status}"
        );
        let documented = match documented.get("$ref").and_then(Value::as_str) {
            Some(r) => &doc["components"]["responses"][r.rsplit('/').next().unwrap()],
            None => documented,
        };
        let essence = content_type.split(';').next().unwrap().trim();
        assert!(
            documented["content"].get(essence).is_some(),
            "{cmd}: {status} answered {content_type}, documented {}",
            documented["content"]
        );
        let body = std::fs::read(&body_file).unwrap();
        if essence == "application/json" {
            serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|e| panic!("{cmd}: not JSON ({e}): {body:?}"));
        }
    }
}
