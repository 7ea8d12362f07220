//! Runs one node: turns sockets, timers and signals into the core's inputs and carries
//! out its actions. Every decision of the protocol is the core's; this file only does
//! what it is told.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::{Message, Utf8Bytes};
use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use futures::channel::mpsc;
use futures::future::{AbortHandle, Abortable, Either};
use futures::io::{AsyncRead, AsyncWrite};
use futures::{SinkExt, StreamExt};
use p2p_core::{
    is_rendered_pool, Action, Address, Config, ConnId, DialId, Level, Limits, Node, Notice,
    Overlay, Payload, Time, Transaction,
};

use crate::folder::{Env, NodeFolder, POOL_FILE};
use crate::inbound::{Budget, Meter, Metered};
use crate::runtime::{self, Listener};
use crate::store::{self, PoolStore, StoreError};
use crate::writer::PoolWriter;

/// Events queued for the node before readers wait (back-pressure onto the sockets).
const EVENT_QUEUE: usize = 4096;
/// How long an accepted TCP connection may take to finish the WebSocket handshake.
const ACCEPT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// New transactions logged one by one per batch of events; the rest are summed up.
const NEW_PER_BATCH: usize = 3;
/// What tungstenite reads from a socket at a time, and gathers of frames before it
/// writes. Its default (128 KiB each way) is written over in full on a connection's
/// first read, so it is resident for every connection: at N = 10, 2.4 MB of a node's
/// memory with nothing to read. A larger frame still gets a buffer of its size.
const SOCKET_BUFFER: usize = 16 << 10;

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The port is taken.
    #[error("port {port} is already in use (is another node running on it?)")]
    PortInUse {
        /// The port.
        port: u16,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// What we tried to bind.
        address: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// The pool could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The thread that writes the pool could not be started.
    #[error("cannot start the thread that writes the pool: {0}")]
    Writer(io::Error),
}

/// What happens around the node, as its host sees it.
enum Event {
    Accepted {
        conn: ConnId,
        outbox: Outbox,
    },
    DialOpened {
        dial: DialId,
        conn: ConnId,
        outbox: Outbox,
    },
    DialFailed {
        dial: DialId,
        address: Address,
        error: String,
    },
    Text {
        conn: ConnId,
        text: Utf8Bytes,
        /// What reading it cost the connection's budget, given back once it is handled.
        charge: usize,
        meter: Arc<Meter>,
    },
    Binary {
        conn: ConnId,
        len: usize,
    },
    Closed {
        conn: ConnId,
        reason: Option<String>,
    },
    /// The pool writer ended on an error: the node stops with it.
    StoreFailed,
    Shutdown,
}

/// Frames for one connection's task. Unbounded here because the core bounds it: it
/// hands a connection at most its send buffer (`Limits::max_send_buffer`) of bytes not
/// yet reported written (on the [`Progress`] channel).
type Outbox = mpsc::UnboundedSender<Utf8Bytes>;

/// Bytes a connection's task wrote to its socket, reported on a channel of their own so
/// that they reach the node ahead of a long queue of incoming frames: a node behind on
/// its input must not take its peers for ones that do not read.
type Progress = mpsc::UnboundedSender<(ConnId, usize)>;

/// Hands out connection ids; shared by the accept loop and the dial tasks.
#[derive(Clone, Default)]
struct ConnIds(Arc<AtomicU64>);

impl ConnIds {
    fn next(&self) -> ConnId {
        ConnId(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// Binds the node's port: `P2P_BIND` if set, else every interface (IPv6 and IPv4 where
/// the machine has IPv6, as the curriculum's `ws` server does).
async fn bind(port: u16, bind: Option<IpAddr>) -> Result<Listener, RunError> {
    let candidates = match bind {
        Some(ip) => vec![ip],
        None => vec![
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ],
    };
    let mut last = None;
    for ip in candidates {
        let address = SocketAddr::new(ip, port);
        match Listener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(RunError::PortInUse { port })
            }
            Err(source) => last = Some(RunError::Bind { address, source }),
        }
    }
    Err(last.unwrap_or(RunError::PortInUse { port }))
}

/// Runs the node of `folder` until Ctrl-C or SIGTERM; in the overlay mode with `overlay`
/// (see `folder::overlay_mode`).
pub(crate) fn run(folder: NodeFolder, overlay: bool) -> Result<(), RunError> {
    runtime::block_on(run_async(folder, overlay))
}

/// The node's configuration from its `.env` and topology (known peers and seed apart).
/// Advertised: P2P_ADVERTISE, else the one IP of P2P_BIND, else ws://localhost:PORT; every
/// other spelling this node answers to is an alias it never dials. The overlay's limits
/// (`Limits::overlay`) in overlay mode; P2P_SEND_BUFFER and P2P_STALL_TIMEOUT over either.
fn node_config(env: &Env, overlay: bool) -> Config {
    let local = env.local_address();
    let advertised = env.advertise.clone().unwrap_or_else(|| local.clone());
    let mut config = Config::new(advertised);
    for alias in [local, Address::localhost(env.port)] {
        if alias != config.address && !config.aliases.contains(&alias) {
            config.aliases.push(alias);
        }
    }
    if overlay {
        config.overlay = Some(Overlay::default());
        config.limits = Limits::overlay();
    }
    if let Some(bytes) = env.send_buffer {
        config.limits.max_send_buffer = bytes;
    }
    if let Some(timeout) = env.stall_timeout {
        config.limits.stall_timeout = timeout;
    }
    config
}

async fn run_async(mut folder: NodeFolder, overlay: bool) -> Result<(), RunError> {
    let mut config = node_config(&folder.env, overlay);
    config.known_peers = folder.known_peers.clone();
    config.seed = seed();
    if overlay {
        // Said once here: a node in the wrong topology is otherwise only seen in `status`.
        log::info!("overlay mode: a bounded-degree overlay instead of the full mesh");
    }
    let listener = bind(folder.env.port, folder.env.bind).await?;
    let journal = folder.dir.join(store::JOURNAL_FILE);
    let (recovered, torn) = store::read_journal(&journal)?;
    let filed = folder.pool.len();
    let mut pool = folder.pool;
    pool.extend(recovered);
    // The journal of a node that did not stop cleanly holds its whole pool: what the
    // pool file lacks of it is what the node had not written there yet.
    let node = Node::new(config, pool);
    let missing = node.pool().len().saturating_sub(filed);
    if missing > 0 || torn > 0 {
        log::info!(
            "recovered {missing} transactions from {} (the node stopped before writing them to {POOL_FILE}){}",
            journal.display(),
            if torn > 0 {
                format!("; dropped {torn} bytes of a transaction cut off mid-write")
            } else {
                String::new()
            }
        );
    }
    // The file's text, checked against the pool one transaction at a time and dropped
    // before the store starts: no second copy of the pool's size at start.
    let current = folder
        .pool_text
        .take()
        .is_some_and(|text| is_rendered_pool(&text, node.pool()));
    let store = PoolStore::open(&folder.dir.join(POOL_FILE), node.pool(), current)?;
    if !node.pool().is_empty() {
        log::info!("loaded {} transactions from {POOL_FILE}", node.pool().len());
    }
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let shutdown = events_tx.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = runtime::block_on(shutdown.clone().send(Event::Shutdown));
    }) {
        log::warn!("cannot catch Ctrl-C ({e}); stop the node with kill -9");
    }
    let failed = events_tx.clone();
    let writer = PoolWriter::start(store, move || {
        let _ = futures::executor::block_on(failed.clone().send(Event::StoreFailed));
    })
    .map_err(RunError::Writer)?;
    let (progress, written) = mpsc::unbounded();
    let limits = &node.config().limits;
    let inbound = Budget::new(
        limits.max_inbound_total,
        limits.max_inbound_buffer,
        limits.stall_timeout,
        limits.max_frame_buffers,
    );
    let mut host = Host {
        ws_config: WebSocketConfig::default()
            .max_message_size(Some(limits.max_frame_bytes))
            .max_frame_size(Some(limits.max_frame_bytes))
            .read_buffer_size(SOCKET_BUFFER)
            .write_buffer_size(SOCKET_BUFFER),
        node,
        writer,
        conns: HashMap::new(),
        events_tx,
        ids: ConnIds::default(),
        epoch: Instant::now(),
        listener: Some(listener),
        persist: Vec::new(),
        new_logged: 0,
        new_unlogged: 0,
        last_frame: None,
        dials: HashMap::new(),
        inbound,
        progress,
        uncarried_bytes: 0,
    };
    host.run(events, written).await
}

/// Within a batch of events, the node's actions are carried out whenever frames of this
/// many bytes were handled since they last were. What the node queues for the host (for
/// each new transaction a notice and a persist, sends) waits until then: a batch of 1,024
/// frames of up to 64 KiB each could be a whole burst (1.45 MB of queued actions in one
/// node of `up 200 --overlay`, heaptrack). A few frames of 64 KiB still give the node's
/// pushes enough to pack; the pool writer still gets the whole batch at once (handing it
/// a part every 256 KiB cost a 50,000 burst 15% of its rate).
const CARRY_OUT_BYTES: usize = 256 << 10;

/// A frame's shared text, as the bytes the WebSocket layer sends without copying them.
struct SharedText(Payload);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

struct Host {
    node: Node,
    writer: PoolWriter,
    conns: HashMap<ConnId, Outbox>,
    events_tx: mpsc::Sender<Event>,
    ids: ConnIds,
    epoch: Instant,
    ws_config: WebSocketConfig,
    listener: Option<Listener>,
    /// Transactions to append at the end of the current batch of events.
    persist: Vec<Transaction>,
    /// New transactions logged, and not logged one by one, in this batch of events.
    new_logged: usize,
    new_unlogged: usize,
    /// The last frame sent and its wire form.
    last_frame: Option<(Payload, Utf8Bytes)>,
    /// Dials in flight, to stop when the node abandons them.
    dials: HashMap<DialId, AbortHandle>,
    /// What the node reads ahead of itself and keeps of read buffers
    /// (`Limits::max_inbound_buffer`, `max_inbound_total`, `max_frame_buffers`).
    inbound: Budget,
    /// Where connection tasks report what they wrote.
    progress: Progress,
    /// Bytes of frames handled since the node's actions were last carried out.
    uncarried_bytes: usize,
}

impl Host {
    fn now(&self) -> Time {
        Time::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    async fn run(
        &mut self,
        mut events: mpsc::Receiver<Event>,
        mut written: mpsc::UnboundedReceiver<(ConnId, usize)>,
    ) -> Result<(), RunError> {
        let now = self.now();
        self.node.start(now);
        self.carry_out();
        let mut alarm = runtime::Alarm::new();
        loop {
            // What was written, then timers, every time round: frames arriving without
            // pause must not keep due dial deadlines, stall checks or catch-up rounds
            // from firing, nor hide that peers read what they were sent.
            self.take_written(&mut written);
            self.fire_due_timers()?;
            let node_wake = self
                .node
                .poll_timeout()
                .map(|at| self.epoch + Duration::from_micros(at.as_micros()));
            alarm.set(node_wake);
            let next = futures::future::select(events.next(), written.next());
            let next = match futures::future::select(next, alarm.ring()).await {
                // Woken by a timer: fired at the top of the loop.
                Either::Right(((), _)) => continue,
                Either::Left((next, _)) => next,
            };
            let next = match next {
                Either::Right((Some((conn, bytes)), _)) => {
                    self.report_written(conn, bytes);
                    continue;
                }
                // The host holds a sender of its own: the channel never ends.
                Either::Right((None, _)) => continue,
                Either::Left((event, _)) => event,
            };
            match next {
                Some(Event::Shutdown) | None => break,
                Some(event) => {
                    if self.handle(event) {
                        break;
                    }
                    // Take what else is waiting before handing the batch to the pool writer.
                    let mut budget = 1024;
                    while budget > 0 {
                        if self.uncarried_bytes >= CARRY_OUT_BYTES {
                            self.carry_out();
                        }
                        match events.try_recv() {
                            Ok(event) => {
                                if self.handle(event) {
                                    return self.stop().await;
                                }
                            }
                            _ => break,
                        }
                        budget -= 1;
                    }
                }
            }
            self.carry_out();
            self.flush()?;
        }
        self.stop().await
    }

    /// Tells the node what connection tasks wrote since the last time.
    fn take_written(&mut self, written: &mut mpsc::UnboundedReceiver<(ConnId, usize)>) {
        while let Ok((conn, bytes)) = written.try_recv() {
            self.report_written(conn, bytes);
        }
    }

    fn report_written(&mut self, conn: ConnId, bytes: usize) {
        if self.conns.contains_key(&conn) {
            let now = self.now();
            self.node.handle_written(conn, bytes, now);
            self.carry_out();
        }
    }

    /// Runs the node's timers and the pool file's rewrite if they are due.
    fn fire_due_timers(&mut self) -> Result<(), RunError> {
        let now = self.now();
        if self.node.poll_timeout().is_some_and(|at| at <= now) {
            self.node.handle_timeout(now);
            self.carry_out();
        }
        Ok(())
    }

    /// Feeds one event to the node; true to stop.
    fn handle(&mut self, event: Event) -> bool {
        let now = self.now();
        match event {
            Event::Accepted { conn, outbox } => {
                self.conns.insert(conn, outbox);
                self.node.handle_accepted(conn, now);
            }
            Event::DialOpened { dial, conn, outbox } => {
                self.dials.remove(&dial);
                self.conns.insert(conn, outbox);
                self.node.handle_dial_opened(dial, conn, now);
            }
            Event::DialFailed {
                dial,
                address,
                error,
            } => {
                self.dials.remove(&dial);
                log::debug!("dial to {address} failed: {error}");
                self.node.handle_dial_failed(dial, now);
            }
            Event::Text {
                conn,
                text,
                charge,
                meter,
            } => {
                if self.conns.contains_key(&conn) {
                    self.node.handle_text(conn, text.as_str(), now);
                }
                self.uncarried_bytes += text.len();
                meter.handled(charge);
            }
            Event::Binary { conn, len } => {
                if self.conns.contains_key(&conn) {
                    self.node.handle_binary(conn, len, now);
                }
            }
            Event::Closed { conn, reason } => {
                if self.conns.remove(&conn).is_some() {
                    if let Some(reason) = reason {
                        log::debug!("connection {conn} ended: {reason}");
                    }
                    self.node.handle_closed(conn, now);
                }
            }
            Event::Shutdown | Event::StoreFailed => return true,
        }
        // The node's actions are carried out once the batch of waiting events is handled:
        // its pushes to peers of ours in between go out packed together.
        false
    }

    /// Carries out every action the node has queued.
    fn carry_out(&mut self) {
        self.uncarried_bytes = 0;
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Listen { address } => self.listen(address),
                Action::Dial { dial, address } => self.dial(dial, address),
                Action::Send { conn, frame } => {
                    let frame = self.wire_frame(frame);
                    if let Some(outbox) = self.conns.get(&conn) {
                        // An error means the task ended: its Closed event is on its way.
                        let _ = outbox.unbounded_send(frame);
                    }
                }
                Action::AbandonDial { dial } => {
                    if let Some(dial) = self.dials.remove(&dial) {
                        dial.abort();
                    }
                }
                Action::Close { conn } => self.close(conn),
                Action::Persist { transaction } => self.persist.push(transaction),
                // Only a node configured to watch (a page's) is handed events; this
                // host never configures one.
                Action::Watched { .. } => {}
                Action::Log(notice) => {
                    // A burst would print a line per transaction; a few per batch of
                    // events tell the story, and a summary the rest (at debug, all).
                    let level = match notice {
                        Notice::NewTransaction { .. } if self.new_logged >= NEW_PER_BATCH => {
                            self.new_unlogged += 1;
                            Level::Debug
                        }
                        Notice::NewTransaction { .. } => {
                            self.new_logged += 1;
                            Level::Info
                        }
                        _ => notice.level(),
                    };
                    match level {
                        Level::Warn => log::warn!("{notice}"),
                        Level::Info => log::info!("{notice}"),
                        Level::Debug => log::debug!("{notice}"),
                    }
                }
            }
        }
    }

    /// The frame as the WebSocket layer takes it: the node's shared text itself, not a
    /// copy (the node hands out one frame for every peer that gets it; a copy per
    /// connection held the burst once per slow peer). Checked as UTF-8 once for a run of
    /// connections it goes to in a row.
    fn wire_frame(&mut self, frame: Payload) -> Utf8Bytes {
        match &self.last_frame {
            Some((last, bytes)) if Arc::ptr_eq(last, &frame) => bytes.clone(),
            _ => {
                let shared = Bytes::from_owner(SharedText(Arc::clone(&frame)));
                // A `str` is UTF-8: the check cannot fail, but costs a pass over it.
                let bytes =
                    Utf8Bytes::try_from(shared).unwrap_or_else(|_| Utf8Bytes::from(frame.as_ref()));
                self.last_frame = Some((frame, bytes.clone()));
                bytes
            }
        }
    }

    /// Closes a connection: dropping its outbox makes its task send a close frame and end.
    fn close(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_some() {
            let now = self.now();
            self.node.handle_closed(conn, now);
        }
    }

    fn flush(&mut self) -> Result<(), RunError> {
        if self.new_unlogged > 0 {
            log::info!(
                "... and {} more new transactions; pool holds {}",
                self.new_unlogged,
                self.node.pool().len()
            );
        }
        (self.new_logged, self.new_unlogged) = (0, 0);
        if !self.persist.is_empty() {
            self.writer.append(std::mem::take(&mut self.persist));
        }
        match self.writer.error() {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    async fn stop(&mut self) -> Result<(), RunError> {
        self.carry_out();
        self.flush()?;
        let written = self.writer.stop()?;
        log::info!(
            "stopping; {} transactions saved in {POOL_FILE} (while running: {} batches \
             journaled, the pool file rewritten {} times in {} ms of processor time)",
            self.node.pool().len(),
            written.batches,
            written.rewrites,
            written.rewriting.as_millis()
        );
        self.conns.clear();
        // Give the connection tasks a moment to send their close frames.
        runtime::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    fn listen(&mut self, address: Address) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        if let Ok(local) = listener.local_addr() {
            log::debug!("serving {address} on {local}");
        }
        let events = self.events_tx.clone();
        let ids = self.ids.clone();
        let config = self.ws_config;
        let inbound = self.inbound.clone();
        let progress = self.progress.clone();
        runtime::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        runtime::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                runtime::tune(&stream);
                let mut events = events.clone();
                let ids = ids.clone();
                let progress = progress.clone();
                let meter = inbound.meter();
                runtime::spawn(async move {
                    let stream = Metered::new(stream, Arc::clone(&meter));
                    let socket = match runtime::timeout(
                        ACCEPT_HANDSHAKE_TIMEOUT,
                        runtime::accept(stream, config),
                    )
                    .await
                    {
                        Some(Ok(socket)) => socket,
                        Some(Err(e)) => {
                            log::debug!("WebSocket handshake refused: {e}");
                            return;
                        }
                        None => {
                            log::debug!("WebSocket handshake timed out");
                            return;
                        }
                    };
                    // The upgrade request is read and gone.
                    meter.handled(meter.claim());
                    let conn = ids.next();
                    let (outbox, queue) = mpsc::unbounded();
                    if events.send(Event::Accepted { conn, outbox }).await.is_ok() {
                        connection(socket, conn, queue, events, progress, meter).await;
                    }
                });
            }
        });
    }

    fn dial(&mut self, dial: DialId, address: Address) {
        let mut events = self.events_tx.clone();
        let ids = self.ids.clone();
        let config = self.ws_config;
        let meter = self.inbound.meter();
        let progress = self.progress.clone();
        let (handle, registration) = AbortHandle::new_pair();
        self.dials.insert(dial, handle);
        runtime::spawn(async move {
            // TCP connect and the WebSocket handshake; the node abandons the dial (and
            // this stops it) if it takes longer than its dial timeout.
            let wrap = |stream| Metered::new(stream, Arc::clone(&meter));
            let connect = runtime::connect(address.host(), address.port(), config, wrap);
            let Ok(result) = Abortable::new(connect, registration).await else {
                log::debug!("dial to {address} abandoned");
                return;
            };
            match result {
                Ok(socket) => {
                    // The upgrade response is read and gone.
                    meter.handled(meter.claim());
                    let conn = ids.next();
                    let (outbox, queue) = mpsc::unbounded();
                    let opened = Event::DialOpened { dial, conn, outbox };
                    if events.send(opened).await.is_ok() {
                        connection(socket, conn, queue, events, progress, meter).await;
                    }
                }
                Err(e) => {
                    let failed = Event::DialFailed {
                        dial,
                        address,
                        error: e.to_string(),
                    };
                    let _ = events.send(failed).await;
                }
            }
        });
    }
}

/// Pumps one WebSocket: frames from `queue` out (batched: one flush per run of queued
/// frames), frames in to the node, until either side ends.
async fn connection<S>(
    socket: WebSocketStream<S>,
    conn: ConnId,
    mut queue: mpsc::UnboundedReceiver<Utf8Bytes>,
    mut events: mpsc::Sender<Event>,
    progress: Progress,
    meter: Arc<Meter>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut sink, mut stream) = socket.split();
    let writer = async {
        while let Some(frame) = queue.next().await {
            let mut bytes = frame.len();
            sink.feed(Message::Text(frame)).await?;
            while let Ok(frame) = queue.try_recv() {
                bytes += frame.len();
                sink.feed(Message::Text(frame)).await?;
            }
            sink.flush().await?;
            // Room for more: the node produces what waited for it.
            if progress.unbounded_send((conn, bytes)).is_err() {
                break;
            }
        }
        // The node closed the connection.
        sink.close(None).await?;
        Ok::<(), async_tungstenite::tungstenite::Error>(())
    };
    let mut reader_events = events.clone();
    let reader = async {
        // Each read waits for the connection's and the node's budgets (`inbound`).
        while let Some(message) = stream.next().await {
            let charge = meter.claim();
            let message = match message {
                Ok(message) => meter
                    .keep(charge)
                    .map(|()| message)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let message = match message {
                Ok(message) => message,
                Err(reason) => {
                    meter.handled(charge);
                    return Some(reason);
                }
            };
            let event = match message {
                Message::Text(text) => Event::Text {
                    conn,
                    text,
                    charge,
                    meter: Arc::clone(&meter),
                },
                message => {
                    meter.handled(charge);
                    match message {
                        Message::Binary(bytes) => Event::Binary {
                            conn,
                            len: bytes.len(),
                        },
                        Message::Close(_) => break,
                        _ => continue,
                    }
                }
            };
            if reader_events.send(event).await.is_err() {
                return None;
            }
        }
        None
    };
    futures::pin_mut!(writer, reader);
    let reason = match futures::future::select(writer, reader).await {
        futures::future::Either::Left((result, _)) => result.err().map(|e| e.to_string()),
        futures::future::Either::Right((reason, _)) => reason,
    };
    let _ = events.send(Event::Closed { conn, reason }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(send_buffer: Option<usize>) -> Env {
        Env {
            port: 4001,
            public_key: None,
            bind: None,
            advertise: None,
            send_buffer,
            stall_timeout: None,
            overlay: None,
        }
    }

    #[test]
    fn an_overlay_node_queues_the_overlays_budget_per_connection_unless_told_otherwise() {
        let mesh = node_config(&env(None), false);
        assert!(mesh.overlay.is_none());
        assert_eq!(mesh.limits, Limits::default());
        let overlay = node_config(&env(None), true);
        assert!(overlay.overlay.is_some());
        assert_eq!(overlay.limits, Limits::overlay());
        assert!(Limits::overlay().max_send_buffer < Limits::default().max_send_buffer);
        for mode in [false, true] {
            let told = node_config(&env(Some(3 << 20)), mode);
            assert_eq!(told.limits.max_send_buffer, 3 << 20);
        }
    }
}
