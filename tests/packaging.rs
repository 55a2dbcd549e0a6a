//! The Linux packaging: `packaging/linux/ecrlink.service` passes `systemd-analyze
//! verify` and keeps the hardening issue 17 asks for, and the `cargo deb` metadata
//! installs it.
//!
//! A plain `#[test]` cannot decide at run time to be *ignored*, and an early return
//! would read as `ok` where nothing was checked. So this file runs its own harness
//! (libtest-mimic, `harness = false`): where `systemd-analyze` is missing, the two
//! tests that need it are reported as `ignored` with the reason printed — except
//! under `CI=true`, where `.ci/run` installs systemd and a missing `systemd-analyze`
//! is a failure. `cargo test --test packaging -- --ignored` runs them anyway (and says
//! what is missing).

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

const UNIT: &str = "packaging/linux/ecrlink.service";

fn main() {
    let args = Arguments::from_args();
    let analyze = systemd_analyze();
    let under_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = analyze.is_none() && !under_ci;
    if skip {
        println!(
            "SKIPPED (reported as ignored): systemd-analyze is not installed (Debian package \
             `systemd`); .ci/run installs it"
        );
    }
    let tests = vec![
        Trial::test("unit_passes_systemd_analyze_verify", verify_unit).with_ignored_flag(skip),
        Trial::test("verify_catches_a_misspelt_key", verify_catches_typo).with_ignored_flag(skip),
        Trial::test("unit_keeps_the_required_hardening", unit_keeps_hardening),
        Trial::test("deb_metadata_installs_unit_and_config", deb_metadata),
    ];
    libtest_mimic::run(&args, tests).exit();
}

fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("systemd-analyze"))
        .find(|p| p.is_file())
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Verifies `unit_text` as /etc/systemd/system/ecrlink.service inside a scratch root
/// that holds the real binary at /usr/bin/ecrlink and this machine's stock units (for
/// sysinit.target, network-online.target …). `verify` exits 0 even for unknown keys,
/// so any line it prints is a failure too.
fn verify_in_root(unit_text: &str) -> Result<String, Failed> {
    let analyze = systemd_analyze().ok_or("systemd-analyze not found (install `systemd`)")?;
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let r = root.path();
    for dir in ["usr/bin", "etc/systemd/system", "lib/systemd"] {
        std::fs::create_dir_all(r.join(dir)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(env!("CARGO_BIN_EXE_ecrlink"), r.join("usr/bin/ecrlink"))
        .map_err(|e| format!("copy ecrlink: {e}"))?;
    std::fs::write(r.join("etc/systemd/system/ecrlink.service"), unit_text)
        .map_err(|e| e.to_string())?;
    let stock = Path::new("/lib/systemd/system");
    if !stock.is_dir() {
        return Err("no /lib/systemd/system with the stock units to verify against".into());
    }
    let copied = Command::new("cp")
        .arg("-r")
        .arg(stock)
        .arg(r.join("lib/systemd/"))
        .status()
        .map_err(|e| e.to_string())?;
    if !copied.success() {
        return Err("cannot copy the stock units".into());
    }
    let out = Command::new(analyze)
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("ecrlink.service")
        .output()
        .map_err(|e| format!("systemd-analyze: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(said)
    } else {
        Err(format!("systemd-analyze verify ({}):\n{said}", out.status).into())
    }
}

fn unit_text() -> Result<String, Failed> {
    std::fs::read_to_string(repo(UNIT)).map_err(|e| format!("{UNIT}: {e}").into())
}

fn verify_unit() -> Result<(), Failed> {
    verify_in_root(&unit_text()?).map(|_| ())
}

/// Shows the check above has teeth: a misspelt key is reported.
fn verify_catches_typo() -> Result<(), Failed> {
    let broken = unit_text()?.replace("ProtectSystem=strict", "ProtectSystm=strict");
    match verify_in_root(&broken) {
        Err(e) if e.message().is_some_and(|m| m.contains("ProtectSystm")) => Ok(()),
        Err(e) => Err(format!("failed, but not for the typo: {e:?}").into()),
        Ok(_) => Err("systemd-analyze accepted ProtectSystm=strict".into()),
    }
}

fn unit_keeps_hardening() -> Result<(), Failed> {
    let text = unit_text()?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let missing: Vec<&str> = [
        "DynamicUser=yes",
        "StateDirectory=ecrlink",
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "ExecStart=/usr/bin/ecrlink serve --config /etc/ecrlink/config.json",
        "WantedBy=multi-user.target",
    ]
    .into_iter()
    .filter(|want| !lines.contains(want))
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{UNIT} lacks {missing:?}").into())
    }
}

fn deb_metadata() -> Result<(), Failed> {
    let manifest = std::fs::read_to_string(repo("Cargo.toml")).map_err(|e| e.to_string())?;
    let section = manifest
        .split("[package.metadata.deb]")
        .nth(1)
        .ok_or("Cargo.toml has no [package.metadata.deb]")?;
    for want in [
        "\"target/release/ecrlink\", \"usr/bin/\"",
        "\"packaging/linux/config.json\", \"etc/ecrlink/config.json\"",
        "unit-scripts = \"packaging/linux\"",
        "unit-name = \"ecrlink\"",
    ] {
        if !section.contains(want) {
            return Err(format!("[package.metadata.deb] lacks {want}").into());
        }
    }
    // The shipped config must parse as JSON and keep state in the state directory.
    let config =
        std::fs::read_to_string(repo("packaging/linux/config.json")).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
    for (key, want) in [
        ("certsDir", "/var/lib/ecrlink/certs"),
        ("journal", "/var/lib/ecrlink/data/journal.db"),
    ] {
        if json[key] != want {
            return Err(format!("packaging/linux/config.json: {key} should be {want}").into());
        }
    }
    Ok(())
}
