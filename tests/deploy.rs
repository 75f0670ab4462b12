//! The service files in `deploy/`: each systemd unit verifies with `systemd-analyze verify` (no warning)
//! and its offline exposure score stays low (`systemd-analyze security --offline=true`).

use std::process::Command;

/// The unit with `/usr/local/bin/shuzhu` pointed at the binary under test (verify checks that the
/// command exists), written to a temporary directory.
fn unit(name: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("{}/deploy/systemd/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text.replace("/usr/local/bin/shuzhu", env!("CARGO_BIN_EXE_shuzhu"))).unwrap();
    path
}

fn analyze(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze runs (Debian: the systemd package; it is on every machine of this project)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn the_systemd_units_verify_and_are_hardened() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["shuzhu-node.service", "shuzhu-gateway.service"] {
        let path = unit(name, dir.path());
        let p = path.to_str().unwrap();
        let (ok, out, err) = analyze(&["verify", p]);
        assert!(ok && out.trim().is_empty() && err.trim().is_empty(), "{name}: {out}{err}");
        let (_, out, err) = analyze(&["security", "--offline=true", p]);
        let score: f64 = out
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no exposure score in {out}{err}"));
        assert!(score <= 2.0, "{name}: exposure {score} (above 2.0 — a hardening line was lost?)\n{out}");
    }
}

#[test]
fn the_container_files_run_the_roles_as_an_unprivileged_user() {
    for role in ["node", "gateway"] {
        let text =
            std::fs::read_to_string(format!("{}/deploy/container/Containerfile.{role}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert!(text.contains("USER 10001:10001"), "{role}");
        assert!(text.contains(&format!("\"{role}\", \"serve\"")), "{role}");
        assert!(text.contains("--locked"), "{role}: builds from Cargo.lock");
    }
}
