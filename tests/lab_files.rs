//! The shipped example configurations and the Vagrant lab stay valid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout under test, read at run time (a test binary may be reused from another one).
fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_example_config_is_valid() {
    let root = repo_root();
    let mut files = Vec::new();
    toml_files(&root.join("etc"), &mut files);
    assert!(files.len() >= 8, "expected the sample, sandbox and group examples: {files:?}");
    for f in files {
        let out = Command::new(env!("CARGO_BIN_EXE_replication-manager"))
            .arg("--config")
            .arg(&f)
            .arg("check-config")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {}{}", f.display(), stdout, String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("ok: "), "{}: {stdout}", f.display());
        assert!(!stdout.contains("warning"), "{} has unknown keys: {stdout}", f.display());
        if f.to_string_lossy().contains("group-") {
            assert!(stdout.contains("3 voter(s)"), "{}: {stdout}", f.display());
        }
        if f.to_string_lossy().contains("arbitrator") && f.to_string_lossy().ends_with("node3.toml") {
            assert!(stdout.contains("(arbitrator)"), "{}: {stdout}", f.display());
        }
    }
}

#[test]
fn vagrantfile_is_valid_ruby_when_ruby_is_installed() {
    let root = repo_root();
    let vf = root.join("Vagrantfile");
    let text = std::fs::read_to_string(&vf).unwrap();
    for needle in ["db1", "db2", "db3", "rm1", "rm2", "rm3", "scripts/lab-provision"] {
        assert!(text.contains(needle), "Vagrantfile lacks {needle}");
    }
    assert!(root.join("scripts/lab-provision").exists());
    match Command::new("ruby").arg("-c").arg(&vf).output() {
        Ok(out) => assert!(out.status.success(), "ruby -c Vagrantfile: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => eprintln!("ruby not installed: syntax check of the Vagrantfile skipped (content checks ran)"),
    }
}
