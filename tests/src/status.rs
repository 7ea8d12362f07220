//! The status extension as a test oracle.

use std::collections::BTreeSet;
use std::time::Duration;

use async_std::future::timeout;
use async_std::net::TcpStream;
use async_tungstenite::tungstenite::Message;
use futures::StreamExt;
use serde_json::Value;

use crate::folder::address;
use crate::node::Node;
use crate::wait::wait_until;

/// A node's answer to `{"type":"STATUS_REQUEST"}`.
#[derive(Debug, Clone)]
pub struct Status {
    /// Its own address.
    pub address: String,
    /// Its `connectedAddresses`: the addresses it holds an open dialled connection to.
    pub connected: BTreeSet<String>,
    /// The addresses it is dialling (each as its JSON text unless a plain string).
    pub dialling: BTreeSet<String>,
    /// How many connections it has accepted and holds open.
    pub inbound: u64,
    /// How many transactions its pool holds.
    pub pool: u64,
    /// Frames it has sent since it started, by type; `None` if the reply has no `sent`
    /// (a node from before the counters).
    pub sent: Option<Sent>,
    /// The whole `STATUS` frame, for messages.
    pub raw: Value,
}

/// Frames a node has sent since it started, by type (`data.sent` of a `STATUS` reply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// HANDSHAKE frames.
    pub handshake: u64,
    /// TRANSACTION frames (each carries one transaction).
    pub transaction: u64,
    /// TRANSACTIONS frames (pushes to a peer of ours packed together).
    pub transactions: u64,
    /// STATUS replies.
    pub status: u64,
    /// HELLO frames.
    pub hello: u64,
    /// SYNC frames (catch-up).
    pub sync: u64,
    /// TXS frames (catch-up; each carries transaction bodies).
    pub txs: u64,
}

impl Sent {
    /// Frames that carry transaction bodies: TRANSACTION, TRANSACTIONS and TXS.
    pub fn carrying_transactions(&self) -> u64 {
        self.transaction + self.transactions + self.txs
    }

    fn parse(sent: &Value) -> Option<Sent> {
        let count = |key: &str| sent[key].as_u64().unwrap_or(0);
        sent.is_object().then(|| Sent {
            handshake: count("handshake"),
            transaction: count("transaction"),
            transactions: count("transactions"),
            status: count("status"),
            hello: count("hello"),
            sync: count("sync"),
            txs: count("txs"),
        })
    }
}

impl Status {
    /// Reads a whole `STATUS` frame (`{"type":"STATUS","data":{...}}`).
    pub fn parse(frame: &Value) -> Result<Status, String> {
        let data = &frame["data"];
        let strings = |key: &str| -> Result<BTreeSet<String>, String> {
            let list = data[key]
                .as_array()
                .ok_or_else(|| format!("STATUS data.{key} is not an array: {frame}"))?;
            Ok(list
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect())
        };
        let number = |key: &str| -> Result<u64, String> {
            data[key]
                .as_u64()
                .ok_or_else(|| format!("STATUS data.{key} is not a count: {frame}"))
        };
        Ok(Status {
            address: data["address"]
                .as_str()
                .ok_or_else(|| format!("STATUS data.address is not a string: {frame}"))?
                .to_owned(),
            connected: strings("connected")?,
            dialling: strings("dialling")?,
            inbound: number("inbound")?,
            pool: number("pool")?,
            sent: Sent::parse(&data["sent"]),
            raw: frame.clone(),
        })
    }
}

/// Dials `ws://localhost:PORT`, sends `{"type":"STATUS_REQUEST"}` and returns the first
/// `STATUS` frame that comes back (other frames are skipped), all within `limit`.
pub fn request_status(port: u16, limit: Duration) -> Result<Status, String> {
    async_std::task::block_on(async {
        match timeout(limit, status_exchange(port)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no STATUS from port {port} within {limit:?}")),
        }
    })
}

async fn status_exchange(port: u16) -> Result<Status, String> {
    let stream = TcpStream::connect(("localhost", port))
        .await
        .map_err(|e| format!("cannot connect to port {port}: {e}"))?;
    status_over(stream, &address(port), &format!("port {port}")).await
}

/// The status exchange on a TCP connection already open to the node at `url` (`what` names
/// it in messages).
pub(crate) async fn status_over(
    stream: TcpStream,
    url: &str,
    what: &str,
) -> Result<Status, String> {
    let (mut ws, _) = async_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| format!("no WebSocket handshake with {what}: {e}"))?;
    ws.send(Message::text(r#"{"type":"STATUS_REQUEST"}"#))
        .await
        .map_err(|e| format!("cannot send STATUS_REQUEST to {what}: {e}"))?;
    while let Some(message) = ws.next().await {
        let message = message.map_err(|e| format!("connection to {what} failed: {e}"))?;
        if let Message::Text(text) = message {
            let frame: Value = match serde_json::from_str(text.as_str()) {
                Ok(frame) => frame,
                Err(_) => continue,
            };
            if frame["type"] == "STATUS" {
                let status = Status::parse(&frame);
                // Closing politely is a courtesy; the answer is what matters.
                let _ = timeout(Duration::from_millis(500), ws.close(None)).await;
                return status;
            }
        }
    }
    Err(format!("{what} closed the connection without a STATUS"))
}

/// Polls every node's status until each one's `connected` set is exactly the addresses of all
/// the others (and its `address` its own); panics after `limit` with every node's last status.
pub fn wait_for_full_mesh<'a>(nodes: impl IntoIterator<Item = &'a Node>, limit: Duration) {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    let addresses: Vec<String> = nodes.iter().map(|node| node.address()).collect();
    let mut last: Vec<Result<Status, String>> = Vec::new();
    let meshed = wait_until(limit, || {
        last = nodes.iter().map(|node| node.status()).collect();
        last.iter()
            .zip(&addresses)
            .all(|(status, own)| match status {
                Ok(status) => {
                    let others: BTreeSet<String> =
                        addresses.iter().filter(|a| *a != own).cloned().collect();
                    status.address == *own && status.connected == others
                }
                Err(_) => false,
            })
    });
    if !meshed {
        panic!(
            "no full mesh of {:?} within {limit:?}; each node's connected set should be all \
             the others. Last statuses:\n{}",
            addresses,
            report(&nodes, &last)
        );
    }
}

/// Polls until the mesh of `nodes` has settled: every node has accepted exactly one connection
/// from each of the others (every pair holds two connections, one dialled by each side) and
/// dials nothing. A node's `inbound` count includes the connection the status request itself
/// arrives on, so it is expected to be one more than the others. Panics after `limit` with
/// every node's last status.
pub fn wait_for_settled_mesh<'a>(nodes: impl IntoIterator<Item = &'a Node>, limit: Duration) {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    let expected_inbound = nodes.len() as u64; // the others, and this status request
    let mut last: Vec<Result<Status, String>> = Vec::new();
    let settled = wait_until(limit, || {
        last = nodes.iter().map(|node| node.status()).collect();
        last.iter().all(|status| {
            status.as_ref().is_ok_and(|status| {
                status.inbound == expected_inbound && status.dialling.is_empty()
            })
        })
    });
    if !settled {
        panic!(
            "the mesh did not settle within {limit:?}: each node should hold {expected_inbound} \
             inbound connections (one from each other node, and the status request's) and \
             dial nothing. Last statuses:\n{}",
            report(&nodes, &last)
        );
    }
}

fn report(nodes: &[&Node], statuses: &[Result<Status, String>]) -> String {
    report_named(nodes.iter().map(|node| node.name()), statuses)
}

/// One line per node: its name, then its STATUS or why there is none.
pub(crate) fn report_named(
    names: impl IntoIterator<Item = String>,
    statuses: &[Result<Status, String>],
) -> String {
    let lines: Vec<String> = names
        .into_iter()
        .zip(statuses)
        .map(|(name, status)| match status {
            Ok(status) => format!("  {name}: {}", status.raw),
            Err(e) => format!("  {name}: {e}"),
        })
        .collect();
    lines.join("\n")
}
