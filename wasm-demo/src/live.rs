//! The browser host's glue: a real [`Node`] in a page, joining the real network.
//!
//! A page cannot accept connections, so the node only dials (`Config::dial_only`) and
//! watches the nodes of ours it reaches (`Config::watch`). [`LivePeer`] takes the
//! browser's events in (a WebSocket opened, a frame, a close, a timer) and hands the
//! node's actions out as JSON for `www/live.js` to carry out with the browser's
//! `WebSocket` and `setTimeout`. Every decision (whom to dial, when to retry, what to
//! send) is the node's; nothing here reads a clock or draws a random number: the page
//! passes `performance.now()` and a seed in.

use p2p_core::{Action, Address, Config, ConnId, DialId, Node, Time, Transaction};
use serde::Serialize;
use serde_json::value::RawValue;
use wasm_bindgen::prelude::*;

use super::{js, whole};

/// What a dial-only node is called in its own log: never sent, never dialled (`.invalid`
/// names resolve nowhere).
const NAME: &str = "ws://this-page.invalid:1";

/// Hashes of the newest transactions [`LivePeer::view`] lists.
const RECENT: usize = 20;

/// A peer of the real network running in the page.
#[wasm_bindgen]
pub struct LivePeer {
    seed: u64,
    node: Option<Node>,
}

#[wasm_bindgen]
impl LivePeer {
    /// A peer that has joined nothing yet; every random choice of its node follows from
    /// `seed` (a whole number up to 2^53; the page draws it with `crypto`).
    #[wasm_bindgen(constructor)]
    pub fn new(seed: f64) -> Result<LivePeer, JsValue> {
        Ok(LivePeer {
            seed: whole(seed, "seed")?,
            node: None,
        })
    }

    /// Names the node to join the network through (`ws://host:port`). Throws, with a
    /// message for people, when it is not such an address, or when called twice.
    pub fn join(&mut self, address: &str) -> Result<(), JsValue> {
        if self.node.is_some() {
            return Err(js("this page has already joined a network"));
        }
        let address: Address = address.trim().parse().map_err(|e| {
            js(format!(
                "{address:?} is not a node's address ({e}); one looks like ws://localhost:4001"
            ))
        })?;
        let mut config = Config::new(NAME.parse().map_err(js)?);
        config.known_peers = vec![address];
        config.seed = self.seed;
        config.dial_only = true;
        config.watch = true;
        self.node = Some(Node::new(config, Vec::new()));
        Ok(())
    }

    /// Starts the node: it dials the address joined through.
    pub fn start(&mut self, now_ms: f64) -> Result<(), JsValue> {
        let now = time(now_ms)?;
        self.node()?.start(now);
        Ok(())
    }

    /// The WebSocket of dial `dial` opened; the page names it `conn`.
    #[wasm_bindgen(js_name = dialOpened)]
    pub fn dial_opened(&mut self, dial: f64, conn: f64, now_ms: f64) -> Result<(), JsValue> {
        let (dial, conn, now) = (DialId(whole(dial, "dial")?), conn_id(conn)?, time(now_ms)?);
        self.node()?.handle_dial_opened(dial, conn, now);
        Ok(())
    }

    /// The WebSocket of dial `dial` failed before it opened.
    #[wasm_bindgen(js_name = dialFailed)]
    pub fn dial_failed(&mut self, dial: f64, now_ms: f64) -> Result<(), JsValue> {
        let (dial, now) = (DialId(whole(dial, "dial")?), time(now_ms)?);
        self.node()?.handle_dial_failed(dial, now);
        Ok(())
    }

    /// A text frame arrived on `conn`.
    pub fn text(&mut self, conn: f64, text: &str, now_ms: f64) -> Result<(), JsValue> {
        let (conn, now) = (conn_id(conn)?, time(now_ms)?);
        self.node()?.handle_text(conn, text, now);
        Ok(())
    }

    /// A binary frame of `len` bytes arrived on `conn`.
    pub fn binary(&mut self, conn: f64, len: f64, now_ms: f64) -> Result<(), JsValue> {
        let (conn, len, now) = (conn_id(conn)?, whole(len, "len")?, time(now_ms)?);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.node()?.handle_binary(conn, len, now);
        Ok(())
    }

    /// `conn` closed, whoever closed it.
    pub fn closed(&mut self, conn: f64, now_ms: f64) -> Result<(), JsValue> {
        let (conn, now) = (conn_id(conn)?, time(now_ms)?);
        self.node()?.handle_closed(conn, now);
        Ok(())
    }

    /// `bytes` of the frames handed over for `conn` have gone to the network.
    pub fn written(&mut self, conn: f64, bytes: f64, now_ms: f64) -> Result<(), JsValue> {
        let (conn, bytes, now) = (conn_id(conn)?, whole(bytes, "bytes")?, time(now_ms)?);
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        self.node()?.handle_written(conn, bytes, now);
        Ok(())
    }

    /// Time passed: called at (or after) [`LivePeer::poll_timeout_ms`].
    pub fn timeout(&mut self, now_ms: f64) -> Result<(), JsValue> {
        let now = time(now_ms)?;
        self.node()?.handle_timeout(now);
        Ok(())
    }

    /// Makes a transaction in this peer, as `add-transaction` does in a node folder
    /// (`toAddress` null: a page has no key), and returns its hash. `amount` is a whole
    /// number from 1; `timeStampMs` the wall clock (`Date.now()`).
    #[wasm_bindgen(js_name = addTransaction)]
    pub fn add_transaction(
        &mut self,
        amount: f64,
        time_stamp_ms: f64,
        now_ms: f64,
    ) -> Result<String, JsValue> {
        let amount = whole(amount, "amount")?;
        if amount == 0 {
            return Err(js("amount must be at least 1"));
        }
        let (time_stamp, now) = (whole(time_stamp_ms, "timeStampMs")?, time(now_ms)?);
        let tx = Transaction::create(None, amount, time_stamp);
        let hash = tx.hash().to_owned();
        self.node()?.add_transaction(tx, now);
        Ok(hash)
    }

    /// The next action, as JSON text (see `Out`), or `undefined` when there is none.
    /// Call until `undefined` after every other call.
    #[wasm_bindgen(js_name = pollAction)]
    pub fn poll_action(&mut self) -> Result<Option<String>, JsValue> {
        let Some(action) = self.node()?.poll_action() else {
            return Ok(None);
        };
        serde_json::to_string(&Out::of(&action)?)
            .map(Some)
            .map_err(js)
    }

    /// When [`LivePeer::timeout`] is next due, on the clock the page passes in; `undefined`
    /// when nothing is.
    #[wasm_bindgen(js_name = pollTimeoutMs)]
    pub fn poll_timeout_ms(&self) -> Option<f64> {
        let node = self.node.as_ref()?;
        node.poll_timeout().map(|at| at.as_micros() as f64 / 1000.0)
    }

    /// The peer's own state, as JSON: `connected` (the nodes it reaches), `dialling`,
    /// `pool` (how many transactions it holds) and `recent` (the newest hashes, oldest
    /// first).
    pub fn view(&self) -> Result<String, JsValue> {
        let view = match &self.node {
            None => View::default(),
            Some(node) => {
                let pool = node.pool();
                View {
                    connected: node
                        .connected_addresses()
                        .iter()
                        .map(Address::as_str)
                        .collect(),
                    dialling: node.dialling().map(Address::as_str).collect(),
                    pool: pool.len(),
                    recent: pool[pool.len().saturating_sub(RECENT)..]
                        .iter()
                        .map(Transaction::hash)
                        .collect(),
                }
            }
        };
        serde_json::to_string(&view).map_err(js)
    }
}

impl LivePeer {
    fn node(&mut self) -> Result<&mut Node, JsValue> {
        self.node
            .as_mut()
            .ok_or_else(|| js("join an address first"))
    }
}

#[derive(Serialize, Default)]
struct View<'a> {
    connected: Vec<&'a str>,
    dialling: Vec<&'a str>,
    pool: usize,
    recent: Vec<&'a str>,
}

/// An action as the page gets it.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Out<'a> {
    Listen {
        address: &'a str,
    },
    Dial {
        dial: u64,
        address: &'a str,
    },
    Send {
        conn: u64,
        frame: &'a str,
    },
    Close {
        conn: u64,
    },
    AbandonDial {
        dial: u64,
    },
    Persist {
        hash: &'a str,
    },
    /// For people only: the page shows it and never acts on it.
    Log {
        level: &'static str,
        text: String,
    },
    Watched {
        from: &'a str,
        event: &'a RawValue,
    },
}

impl<'a> Out<'a> {
    fn of(action: &'a Action) -> Result<Out<'a>, JsValue> {
        Ok(match action {
            Action::Listen { address } => Out::Listen {
                address: address.as_str(),
            },
            Action::Dial { dial, address } => Out::Dial {
                dial: dial.0,
                address: address.as_str(),
            },
            Action::Send { conn, frame } => Out::Send {
                conn: conn.0,
                frame,
            },
            Action::Close { conn } => Out::Close { conn: conn.0 },
            Action::AbandonDial { dial } => Out::AbandonDial { dial: dial.0 },
            Action::Persist { transaction } => Out::Persist {
                hash: transaction.hash(),
            },
            Action::Log(notice) => Out::Log {
                level: match notice.level() {
                    p2p_core::Level::Warn => "warn",
                    p2p_core::Level::Info => "info",
                    p2p_core::Level::Debug => "debug",
                },
                text: notice.to_string(),
            },
            Action::Watched { from, event } => Out::Watched {
                from: from.as_str(),
                // The node checked it is a JSON object; a page parses it as one.
                event: serde_json::from_str(event).map_err(js)?,
            },
        })
    }
}

fn conn_id(conn: f64) -> Result<ConnId, JsValue> {
    Ok(ConnId(whole(conn, "conn")?))
}

/// `performance.now()` milliseconds as the node's time, to the microsecond.
fn time(now_ms: f64) -> Result<Time, JsValue> {
    let micros = whole((now_ms * 1000.0).round(), "a time in ms")
        .map_err(|_| js(format!("{now_ms} is not a time in ms")))?;
    Ok(Time::from_micros(micros))
}
