//! Finding (and building) the `p2p-node` binary.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root: the parent of this crate's folder.
pub fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("the tests crate sits in a folder of the workspace root")
}

/// The `p2p-node` binary under test.
///
/// `$P2P_NODE_BIN` if set. Otherwise `cargo build -p native-host --bin p2p-node` runs once per
/// test process (with `$CARGO`, the cargo running the tests, when set) and the binary it
/// reports is used: a no-op build when up to date, and cargo's own lock keeps test binaries run
/// at once from building over each other. Panics with the build's diagnostics if it fails.
pub fn p2p_node_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

fn locate() -> Result<PathBuf, String> {
    if let Some(path) = env::var_os("P2P_NODE_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("P2P_NODE_BIN={} is not a file", path.display()))
        };
    }
    build_p2p_node(false)
}

/// Builds `p2p-node` (`release`: with `--release`) with `$CARGO`, or `cargo`, and returns
/// the path of the executable cargo reports; a no-op build when up to date.
pub fn build_p2p_node(release: bool) -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut args = vec!["build"];
    if release {
        args.push("--release");
    }
    args.extend([
        "-p",
        "native-host",
        "--bin",
        "p2p-node",
        "--message-format=json-render-diagnostics",
    ]);
    let output = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(&args)
        .output()
        .map_err(|e| format!("could not run {cargo:?} to build p2p-node: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo {}` failed ({}):\n{}",
            args[..args.len() - 1].join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // Cargo names the executable it built in its JSON messages, wherever the target dir is.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "p2p-node")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built native-host but named no p2p-node executable".to_owned())
}
