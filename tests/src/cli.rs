//! One-shot runs of `p2p-node`: `add-transaction`, `clone`, `delete-nodes`, a `start` that
//! must fail.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::binary::p2p_node_bin;
use crate::COMMAND_DEADLINE;

/// What a finished `p2p-node` run did.
#[derive(Debug)]
pub struct Run {
    /// What it ran, for messages.
    pub command: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Everything about the run, for a failure message.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// The first line of `run`'s standard error that starts with `error:`.
pub fn error_line(run: &Run) -> Option<&str> {
    run.stderr.lines().find(|line| line.starts_with("error:"))
}

/// Runs `p2p-node ARGS` in `cwd` and waits for it to end; panics if it runs longer than
/// `timeout` (it is killed first) or cannot be started.
pub fn run_p2p_node(args: &[&str], cwd: &Path, timeout: Duration) -> Run {
    try_run_p2p_node(args, cwd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `p2p-node ARGS` in `cwd` and waits for it to end; `Err` (saying what it printed) if
/// it runs longer than `timeout`, in which case it is killed.
pub fn try_run_p2p_node(args: &[&str], cwd: &Path, timeout: Duration) -> Result<Run, String> {
    let command = format!("p2p-node {} (in {})", args.join(" "), cwd.display());
    let mut stdout = tempfile::tempfile().unwrap_or_else(|e| panic!("no temp file: {e}"));
    let mut stderr = tempfile::tempfile().unwrap_or_else(|e| panic!("no temp file: {e}"));
    // Files, not pipes: a chatty process cannot block on a full pipe while we poll it.
    let mut child = Command::new(p2p_node_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(clone_handle(&stdout))
        .stderr(clone_handle(&stderr))
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {command}: {e}"));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < timeout => thread::sleep(Duration::from_millis(20)),
            Ok(None) => break None,
            Err(e) => panic!("could not wait for {command}: {e}"),
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "`{command}` still ran after {timeout:?}; killed it.\n--- stdout ---\n{}\n--- stderr ---\n{}",
            read_all(&mut stdout),
            read_all(&mut stderr)
        ));
    };
    Ok(Run {
        command,
        status,
        stdout: read_all(&mut stdout),
        stderr: read_all(&mut stderr),
    })
}

/// A second handle to `file` (for a child's stdout or stderr).
pub fn clone_handle(file: &File) -> File {
    file.try_clone()
        .unwrap_or_else(|e| panic!("could not duplicate a temp file handle: {e}"))
}

/// All that `file` holds, from its start, as text.
pub fn read_all(file: &mut File) -> String {
    let mut bytes = Vec::new();
    let _ = file.rewind();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What `add-transaction` said it sent.
#[derive(Debug, Clone)]
pub struct SentTransaction {
    /// The transaction's hash: `hash` of the JSON object it printed, else the first
    /// 64-hex-digit word of its output.
    pub hash: String,
    /// The transaction object, if its output holds one as JSON (spanning one or more lines).
    pub transaction: Option<Value>,
    /// Everything it printed.
    pub stdout: String,
}

/// Runs `p2p-node add-transaction` in the node folder `dir` (as `cargo add-transaction` is
/// run there), asserts it succeeded, and returns what it sent.
pub fn add_transaction(dir: &Path) -> SentTransaction {
    let run = run_p2p_node(&["add-transaction"], dir, COMMAND_DEADLINE);
    sent_transaction(run)
}

/// What a successful `add-transaction` run sent; panics if it failed or printed no hash.
pub fn sent_transaction(run: Run) -> SentTransaction {
    assert!(
        run.status.success(),
        "add-transaction failed: {}",
        run.describe()
    );
    let transaction = find_json_object(&run.stdout);
    let printed_hash = transaction
        .as_ref()
        .and_then(|transaction| transaction["hash"].as_str())
        .map(str::to_owned);
    let hash = printed_hash
        .or_else(|| find_hash(&run.stdout))
        .unwrap_or_else(|| {
            panic!(
                "add-transaction printed no 64-hex-digit hash: {}",
                run.describe()
            )
        });
    SentTransaction {
        transaction,
        hash,
        stdout: run.stdout,
    }
}

fn find_hash(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| word.len() == 64 && word.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_owned)
}

/// The first JSON object in `text` that starts at a `{`, whatever surrounds it.
fn find_json_object(text: &str) -> Option<Value> {
    text.match_indices('{').find_map(|(start, _)| {
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value @ Value::Object(_))) => Some(value),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_found_among_other_words() {
        let hash = "ab".repeat(32);
        let text = format!("sent TRANSACTION {{\"hash\":\"{hash}\"}} to ws://localhost:4001");
        assert_eq!(find_hash(&text), Some(hash.clone()));
        assert_eq!(
            find_json_object(&text),
            Some(serde_json::json!({ "hash": hash }))
        );
    }
}
