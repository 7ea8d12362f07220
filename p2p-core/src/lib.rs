//! The gossip protocol of the curriculum's peer-to-peer network, as a pure state machine.
//!
//! A [`Node`] is one node of the network without any I/O: it never opens a socket, reads a
//! file or a clock, starts a thread or draws an unseeded random number. Its host (the
//! native `p2p-node` binary, the simulator in `sim`, a browser page) does all of that
//! and tells the node what happened; the node answers with [`Action`]s for the host to
//! carry out. The same inputs always give the same outputs. The simulator is compiled
//! only with the cargo feature `sim` (and for p2p-core's own tests and examples), so the
//! node binary never carries it.
//!
//! # Driving a node
//!
//! Build it with [`Node::new`] from a [`Config`] and the stored pool, then call
//! [`Node::start`]. Every input is a `handle_*` method that takes the current [`Time`]:
//! a dial opened or failed, a connection accepted or closed, a frame received, or a
//! timeout. After every input, call [`Node::poll_action`] until it returns `None` and
//! carry out each action in order; then sleep until [`Node::poll_timeout`] or the next
//! input, whichever comes first, and on waking call [`Node::handle_timeout`]. Calling it
//! early or more often is harmless. A host may also feed a batch of inputs that are
//! already waiting before it drains the actions: the new transactions it pushes to a
//! peer of ours in between then go out packed, one TRANSACTIONS frame for many (the
//! native host does so, up to 1,024 inputs a batch).
//!
//! Connections are named by [`ConnId`]s the host chooses; dials by [`DialId`]s the node
//! chooses, which the host hands back when it reports how the dial ended. A host that
//! closes a connection, or sees it closed, reports it once with [`Node::handle_closed`].
//!
//! Every frame handed over in an [`Action::Send`] counts against its connection's send
//! buffer until the host reports it written with [`Node::handle_written`] (the sum of
//! the frames' lengths, when they have left for the network). A host that never reports
//! a write stops getting frames for that connection once its buffer is full, and the
//! node closes the connection when nothing is written for `Limits::stall_timeout`. A
//! dial the node gives up on is named in an [`Action::AbandonDial`]: the host stops it
//! and reports nothing more of it. [`Action::Log`] notices are for people; a host must
//! never act on one: what it must do is always an action.
//!
//! A host that cannot accept connections (a browser tab) sets `Config::dial_only`: the
//! node never asks it to listen, names no address of its own to anyone, and is pushed
//! transactions by the nodes of ours it dials on the connections it opened. With
//! `Config::watch` it also asks those nodes to stream what they do, and hands each event
//! over as an [`Action::Watched`], JSON for the host to show.
//!
//! `Config::overlay` puts the node in the overlay mode (a few links per node instead of
//! the full mesh; `docs/overlay.md`). Driving it is the same: the same inputs and
//! actions, dials and connections; a link is one connection used both ways, so the host
//! reads and writes every connection whatever side opened it, as it already does.
//!
//! ```
//! use p2p_core::{Action, Address, Config, ConnId, Node, Time};
//!
//! let mut config = Config::new(Address::localhost(4001));
//! config.known_peers = vec!["ws://localhost:4002".parse().unwrap()];
//! let mut node = Node::new(config, Vec::new());
//! node.start(Time::ZERO);
//! let mut dials = Vec::new();
//! while let Some(action) = node.poll_action() {
//!     if let Action::Dial { dial, address } = action {
//!         dials.push((dial, address));
//!     }
//! }
//! assert_eq!(dials[0].1.to_string(), "ws://localhost:4002");
//! // The host opened the connection and named it #1: the node sends its HANDSHAKE.
//! node.handle_dial_opened(dials[0].0, ConnId(1), Time::from_millis(3));
//! let sent = std::iter::from_fn(|| node.poll_action()).find_map(|a| match a {
//!     Action::Send { frame, .. } => Some(frame),
//!     _ => None,
//! });
//! // Its own address first, then every open dial; `ext` marks it as one of ours.
//! assert!(sent.unwrap().starts_with(
//!     r#"{"type":"HANDSHAKE","data":["ws://localhost:4001","ws://localhost:4002"],"ext":"#
//! ));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod address;
mod config;
pub mod frame;
mod node;
mod rng;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod sync;
mod time;
mod transaction;

pub use address::{Address, AddressError, MAX_ADDRESS_LEN};
pub use config::{Backoff, Config, Limits, Overlay, Sync};
pub use frame::{Frame, FrameError, Overlay as OverlayFrame};
pub use node::{Action, ConnId, DialId, Level, Node, Notice, OverlayStatus, Payload, Sent, Status};
pub use rng::Rng;
pub use time::Time;
pub use transaction::{
    is_rendered_pool, parse_pool, render_appended, render_pool, PoolFileError, Transaction,
    TransactionError, MAX_HASH_LEN,
};
