//! Every bad configuration stops `p2p-node start` at once with a clear one-line `error:` and a
//! non-zero exit, and leaves the node folder as it was; so does `add-transaction` when its node
//! is not running.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use tests::{error_line, ports, try_run_p2p_node, NodeSpec, Scratch};

/// A failing start has no reason to take long; one that runs this long has started.
const LIMIT: Duration = Duration::from_secs(10);

/// How a case breaks a good node folder.
enum Breakage {
    /// Write this file (relative to the folder) with this content.
    Write(&'static str, &'static str),
    /// Add this line to `.env` (after a good `PORT`).
    AppendEnv(&'static str),
    /// Remove this file.
    Remove(&'static str),
    /// Replace this file with a folder: it exists but cannot be read as a file.
    Folder(&'static str),
    /// Leave the folder good, but hold its port with a listener of our own.
    HoldPort,
}

struct Case {
    name: &'static str,
    breakage: Breakage,
    /// The error line must mention one of these (case-insensitive).
    mentions: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "no .env",
        breakage: Breakage::Remove(".env"),
        mentions: &[".env"],
    },
    Case {
        name: "no PORT",
        breakage: Breakage::Write(".env", "MY_PUBLIC_KEY=04ab\n"),
        mentions: &["port"],
    },
    Case {
        name: "PORT=abc",
        breakage: Breakage::Write(".env", "PORT=abc\n"),
        mentions: &["port"],
    },
    Case {
        name: "PORT=70000",
        breakage: Breakage::Write(".env", "PORT=70000\n"),
        mentions: &["port"],
    },
    Case {
        name: "PORT empty",
        breakage: Breakage::Write(".env", "PORT=\n"),
        mentions: &["port"],
    },
    Case {
        name: "PORT=-1",
        breakage: Breakage::Write(".env", "PORT=-1\n"),
        mentions: &["port"],
    },
    Case {
        name: "port in use",
        breakage: Breakage::HoldPort,
        mentions: &["in use", "port", "bind", "listen"],
    },
    Case {
        name: "P2P_SEND_QUEUE, replaced by P2P_SEND_BUFFER",
        breakage: Breakage::AppendEnv("P2P_SEND_QUEUE=131072"),
        mentions: &["p2p_send_buffer"],
    },
    Case {
        name: "P2P_OVERLAY neither on nor off",
        breakage: Breakage::AppendEnv("P2P_OVERLAY=yes"),
        mentions: &["p2p_overlay"],
    },
    Case {
        name: "known-peers.json not JSON",
        breakage: Breakage::Write("known-peers.json", "[\"ws://localhost:4001\","),
        mentions: &["known-peers.json"],
    },
    Case {
        name: "known-peers.json not an array",
        breakage: Breakage::Write("known-peers.json", "{\"peers\": []}"),
        mentions: &["known-peers.json"],
    },
    Case {
        name: "known-peers.json of numbers",
        breakage: Breakage::Write("known-peers.json", "[4001, 4003]"),
        mentions: &["known-peers.json"],
    },
    Case {
        name: "known-peers.json unreadable",
        breakage: Breakage::Folder("known-peers.json"),
        mentions: &["known-peers.json"],
    },
    Case {
        name: "transactions.json not JSON",
        breakage: Breakage::Write("transactions.json", "[\n  {\n    \"hash\": \"ab\""),
        mentions: &["transactions.json"],
    },
    Case {
        name: "transactions.json not an array",
        breakage: Breakage::Write("transactions.json", "{}"),
        mentions: &["transactions.json"],
    },
    Case {
        name: "transactions.json of numbers",
        breakage: Breakage::Write("transactions.json", "[1, 2]"),
        mentions: &["transactions.json"],
    },
    Case {
        name: "transactions.json unreadable",
        breakage: Breakage::Folder("transactions.json"),
        mentions: &["transactions.json"],
    },
];

/// Every file under `dir` (by path relative to it) and its bytes; folders as empty entries.
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        let listing = fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display()));
        for entry in listing {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display()))
                .path();
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                files.insert(name, None);
                stack.push(path);
            } else {
                let bytes = fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                files.insert(name, Some(bytes));
            }
        }
    }
    files
}

/// Runs one case; `Err` says how it went wrong.
fn check(scratch: &Scratch, index: usize, case: &Case) -> Result<(), String> {
    let port = ports::BAD_CONFIGURATION + index as u16;
    let pool = vec![
        serde_json::json!({"fromAddress": null, "toAddress": null, "amount": 3,
        "timeStamp": 1700000000000u64, "hash": "11".repeat(32)}),
    ];
    let dir = scratch.node_folder(
        &format!("case-{index}"),
        &NodeSpec::new(port).knowing(&[port + 100]).pool(pool),
    );
    let _held = match case.breakage {
        Breakage::Write(file, content) => {
            fs::write(dir.join(file), content).map_err(|e| format!("setup: {e}"))?;
            None
        }
        Breakage::AppendEnv(line) => {
            let path = dir.join(".env");
            let env = fs::read_to_string(&path).map_err(|e| format!("setup: {e}"))?;
            fs::write(&path, format!("{env}{line}\n")).map_err(|e| format!("setup: {e}"))?;
            None
        }
        Breakage::Remove(file) => {
            fs::remove_file(dir.join(file)).map_err(|e| format!("setup: {e}"))?;
            None
        }
        Breakage::Folder(file) => {
            fs::remove_file(dir.join(file)).map_err(|e| format!("setup: {e}"))?;
            fs::create_dir(dir.join(file)).map_err(|e| format!("setup: {e}"))?;
            None
        }
        Breakage::HoldPort => Some(
            TcpListener::bind(("0.0.0.0", port))
                .map_err(|e| format!("setup: cannot hold port {port}: {e}"))?,
        ),
    };
    let before = snapshot(&dir);
    let run = try_run_p2p_node(&["start"], &dir, LIMIT)?;
    if run.status.success() || run.status.code().is_none() {
        return Err(format!("expected a non-zero exit code: {}", run.describe()));
    }
    let Some(line) = error_line(&run) else {
        return Err(format!(
            "no stderr line starts with `error:`: {}",
            run.describe()
        ));
    };
    let lower = line.to_lowercase();
    if !case.mentions.iter().any(|word| lower.contains(word)) {
        return Err(format!(
            "the error line does not mention any of {:?}: {line}",
            case.mentions
        ));
    }
    if snapshot(&dir) != before {
        return Err("the node folder changed (a file was written, created or removed)".to_owned());
    }
    Ok(())
}

#[test]
fn every_bad_configuration_gives_a_clear_error_and_a_non_zero_exit() {
    let scratch = Scratch::new();
    let failures: Vec<String> = CASES
        .iter()
        .enumerate()
        .filter_map(|(index, case)| {
            check(&scratch, index, case)
                .err()
                .map(|e| format!("{}: {e}", case.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases went wrong:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn start_with_dir_reads_that_folder_not_the_working_directory() {
    let scratch = Scratch::new();
    // The working directory is a good node folder; --dir names one without .env.
    let good = scratch.node_folder("good", &NodeSpec::new(ports::BAD_CONFIGURATION + 19));
    let bad = scratch.path().join("empty");
    fs::create_dir(&bad).unwrap_or_else(|e| panic!("{e}"));
    let bad_arg = bad.to_string_lossy().into_owned();
    let run = try_run_p2p_node(&["start", "--dir", &bad_arg], &good, LIMIT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!run.status.success(), "{}", run.describe());
    let line = error_line(&run).unwrap_or_else(|| panic!("no `error:` line: {}", run.describe()));
    assert!(
        line.contains(".env"),
        "the error line does not mention .env: {line}"
    );
}

#[test]
fn start_overlay_in_a_folder_that_says_p2p_overlay_off_is_refused() {
    // What `up --overlay` runs in every folder: it must not overrule an explicit off.
    let scratch = Scratch::new();
    let spec = NodeSpec::new(ports::BAD_CONFIGURATION + 17).env("P2P_OVERLAY", "off");
    let dir = scratch.node_folder("node-1", &spec);
    let before = snapshot(&dir);
    let run =
        try_run_p2p_node(&["start", "--overlay"], &dir, LIMIT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !run.status.success(),
        "expected a non-zero exit: {}",
        run.describe()
    );
    let line = error_line(&run).unwrap_or_else(|| panic!("no `error:` line: {}", run.describe()));
    assert!(
        line.contains("P2P_OVERLAY=off") && line.contains("--overlay"),
        "the error line does not name the setting and the option: {line}"
    );
    assert!(
        snapshot(&dir) == before,
        "the refused start changed the node folder"
    );
}

#[test]
fn add_transaction_without_a_running_node_fails_with_a_clear_error() {
    let scratch = Scratch::new();
    // Nothing listens on this port.
    let dir = scratch.node_folder("node-1", &NodeSpec::new(ports::BAD_CONFIGURATION + 18));
    let before = snapshot(&dir);
    let run = try_run_p2p_node(&["add-transaction"], &dir, LIMIT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !run.status.success(),
        "expected a non-zero exit: {}",
        run.describe()
    );
    assert!(
        error_line(&run).is_some(),
        "no stderr line starts with `error:`: {}",
        run.describe()
    );
    assert!(
        snapshot(&dir) == before,
        "add-transaction changed the node folder"
    );
}
