//! Short-lived client connections to a running node: `add-transaction` and `status`.

use std::time::Duration;

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use futures::StreamExt;
use p2p_core::{Address, Transaction};
use serde::{Deserialize, Serialize};

use crate::runtime;

/// How long a client waits for a node to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Why talking to a node failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// Nothing answers at the address.
    #[error("no node is running at {0}")]
    NotRunning(Address),
    /// The node did not answer in time.
    #[error("{0} did not answer within {ANSWER_TIMEOUT:?}")]
    Timeout(Address),
    /// The connection broke.
    #[error("connection to {address} failed: {message}")]
    Broken {
        /// The node.
        address: Address,
        /// What went wrong.
        message: String,
    },
}

/// A node's state, from its STATUS reply.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct NodeStatus {
    pub(crate) address: String,
    pub(crate) connected: Vec<String>,
    pub(crate) dialling: Vec<String>,
    pub(crate) inbound: usize,
    /// Dial-only peers (pages) and watchers; nodes of older builds do not say.
    #[serde(default)]
    pub(crate) pages: usize,
    #[serde(default)]
    pub(crate) watchers: usize,
    pub(crate) pool: usize,
    /// The node's place in the overlay: `null` in the full mesh, absent from nodes of
    /// older builds (both `None`).
    #[serde(default)]
    pub(crate) overlay: Option<OverlayView>,
}

/// A node's place in the overlay, from STATUS's `overlay` (`p2p_core::OverlayStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct OverlayView {
    /// The peers it is linked to (its active view).
    pub(crate) active: Vec<String>,
    /// Links that carry transactions by push.
    pub(crate) eager: usize,
    /// Addresses kept to replace a lost link (the passive view's size).
    pub(crate) passive: usize,
    /// It wants links and has none.
    pub(crate) isolated: bool,
}

#[derive(Deserialize)]
struct StatusFrame {
    #[serde(rename = "type")]
    kind: String,
    data: Option<NodeStatus>,
}

/// The status in a frame's text, if it is a STATUS reply; any other frame is `None`.
fn parse_status(text: &str) -> Option<NodeStatus> {
    match serde_json::from_str::<StatusFrame>(text) {
        Ok(StatusFrame {
            kind,
            data: Some(status),
        }) if kind == "STATUS" => Some(status),
        _ => None,
    }
}

async fn open(address: &Address) -> Result<runtime::Socket, ClientError> {
    match runtime::timeout(
        ANSWER_TIMEOUT,
        runtime::connect(
            address.host(),
            address.port(),
            WebSocketConfig::default(),
            |s| s,
        ),
    )
    .await
    {
        None => Err(ClientError::Timeout(address.clone())),
        Some(Ok(socket)) => Ok(socket),
        Some(Err(async_tungstenite::tungstenite::Error::Io(_))) => {
            Err(ClientError::NotRunning(address.clone()))
        }
        Some(Err(e)) => Err(ClientError::Broken {
            address: address.clone(),
            message: e.to_string(),
        }),
    }
}

fn broken(address: &Address) -> impl Fn(async_tungstenite::tungstenite::Error) -> ClientError + '_ {
    move |e| ClientError::Broken {
        address: address.clone(),
        message: e.to_string(),
    }
}

/// Sends one TRANSACTION frame to the node at `address`, then closes.
pub(crate) async fn send_transaction(
    address: &Address,
    transaction: &Transaction,
) -> Result<(), ClientError> {
    let mut socket = open(address).await?;
    socket
        .send(Message::text(transaction.to_frame()))
        .await
        .map_err(broken(address))?;
    socket.close(None).await.map_err(broken(address))?;
    // Wait for the node's close reply, so the frame is known to have been read.
    let _ = runtime::timeout(ANSWER_TIMEOUT, async {
        while socket.next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Asks the node at `address` for its status.
pub(crate) async fn status(address: &Address) -> Result<NodeStatus, ClientError> {
    let mut socket = open(address).await?;
    socket
        .send(Message::text(r#"{"type":"STATUS_REQUEST"}"#))
        .await
        .map_err(broken(address))?;
    let reply = runtime::timeout(ANSWER_TIMEOUT, async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Text(text)) = message {
                if let Some(status) = parse_status(text.as_str()) {
                    return Some(status);
                }
            }
        }
        None
    })
    .await;
    let _ = socket.close(None).await;
    match reply {
        None => Err(ClientError::Timeout(address.clone())),
        Some(None) => Err(ClientError::Broken {
            address: address.clone(),
            message: "closed without a STATUS reply (not one of our nodes?)".to_owned(),
        }),
        Some(Some(status)) => Ok(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESH: &str = r#"{"type":"STATUS","data":{"address":"ws://localhost:4001",
        "connected":["ws://localhost:4002"],"dialling":[],"inbound":1,"pages":0,
        "watchers":0,"pool":2,"sent":{"handshake":1}"#;

    #[test]
    fn a_status_reply_with_an_overlay_gives_its_views() {
        let text = format!(
            r#"{MESH},"overlay":{{"active":["ws://localhost:4002","ws://localhost:4005"],
            "eager":1,"passive":12,"isolated":false}}}}}}"#
        );
        let status = parse_status(&text).unwrap_or_else(|| panic!("not parsed: {text}"));
        assert_eq!(
            status.overlay,
            Some(OverlayView {
                active: vec![
                    "ws://localhost:4002".to_owned(),
                    "ws://localhost:4005".to_owned()
                ],
                eager: 1,
                passive: 12,
                isolated: false,
            })
        );
        assert_eq!(status.pool, 2);
    }

    #[test]
    fn a_mesh_node_and_a_node_of_an_older_build_have_no_overlay() {
        for text in [
            format!(r#"{MESH},"overlay":null}}}}"#),
            format!("{MESH}}}}}"),
        ] {
            let status = parse_status(&text).unwrap_or_else(|| panic!("not parsed: {text}"));
            assert_eq!(status.overlay, None, "{text}");
            assert_eq!(status.connected, vec!["ws://localhost:4002".to_owned()]);
        }
    }

    #[test]
    fn frames_other_than_status_are_not_a_status() {
        for text in [
            r#"{"type":"HELLO"}"#,
            r#"{"type":"HANDSHAKE","data":["ws://localhost:4001"]}"#,
            "not json",
        ] {
            assert!(parse_status(text).is_none(), "{text}");
        }
    }
}
