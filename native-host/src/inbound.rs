//! What the node reads from its sockets ahead of itself: a budget per connection and one
//! for the whole node, both from its `Limits`.
//!
//! Bytes are counted as they are read from a socket (the HTTP upgrade, frame headers,
//! control frames and messages alike), charged to the message they end in, and given
//! back when the node has handled that message. So what is counted is what the node
//! holds: messages waiting for it and the one under way on each connection.
//!
//! - **Per connection**, `Limits::max_inbound_buffer`: a connection holding that much
//!   starts no new message until the node has handled some of it (a message under way is
//!   finished: the budget plus one message). A peer faster than the node is slowed by
//!   TCP's back-pressure.
//! - **In all**, `Limits::max_inbound_total`: while the node holds that much, no
//!   connection reads at all, not even to finish a message.
//! - **A message begun ends within `Limits::stall_timeout`**, or its connection fails.
//!   A peer that stops in the middle of a message (or a thousand doing it at once, to
//!   fill the node's budget) holds its bytes that long at most, and a connection stopped
//!   by a full budget in the middle of a message is closed, not stuck.
//! - **Buffers kept for long frames**, `Limits::max_frame_buffers` in all. tungstenite's
//!   read buffer takes the size of the longest frame a connection sent and keeps it until
//!   the connection ends (a thousand connections that each sent one frame of 900 KB held
//!   885 MiB of a node). A message longer than [`KEPT_FROM`] counts as kept for its
//!   connection until it ends; a connection whose long message would pass the budget is
//!   closed, and its buffer goes with it. At the defaults, 128 connections at once may
//!   keep a buffer for the longest frame a node of ours sends (a SYNC of 256 KiB).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener};
use futures::io::{AsyncRead, AsyncWrite};
use futures::Future;

use crate::runtime::Alarm;

/// The most read from a socket at once (what tungstenite asks for, too): so little beyond
/// a message's end is read into the next one before the message is charged.
const READ_AT_ONCE: usize = 16 << 10;

/// Messages up to this long (with what was read of the next one) keep no more than the
/// buffer every connection has: a TXS or TRANSACTIONS frame of the core (64 KiB) is one.
const KEPT_FROM: usize = 96 << 10;

/// A connection sent a message long enough to keep its buffer, and the node keeps its
/// budget of such buffers already.
#[derive(Debug, thiserror::Error)]
#[error(
    "a message of {bytes} bytes: buffers kept for long frames would pass the node's {limit} bytes"
)]
pub(crate) struct TooMuchKept {
    bytes: usize,
    limit: usize,
}

/// The node's budget: shared by every connection's [`Meter`].
#[derive(Clone)]
pub(crate) struct Budget(Arc<Shared>);

struct Shared {
    /// Bytes read and not yet handled, over every connection.
    held: AtomicUsize,
    /// `Limits::max_inbound_total`.
    total: usize,
    /// `Limits::max_inbound_buffer`.
    per_connection: usize,
    /// `Limits::stall_timeout`: how long a message may take once begun.
    message_deadline: Duration,
    /// Notified when bytes are given back across a limit.
    drained: Event,
    /// Bytes of buffers kept for long frames, over every connection.
    kept: AtomicUsize,
    /// `Limits::max_frame_buffers`.
    kept_limit: usize,
}

impl Budget {
    pub(crate) fn new(
        total: usize,
        per_connection: usize,
        message_deadline: Duration,
        kept_limit: usize,
    ) -> Budget {
        Budget(Arc::new(Shared {
            held: AtomicUsize::new(0),
            total,
            per_connection,
            message_deadline,
            drained: Event::new(),
            kept: AtomicUsize::new(0),
            kept_limit,
        }))
    }

    /// The meter of a new connection.
    pub(crate) fn meter(&self) -> Arc<Meter> {
        Arc::new(Meter {
            shared: Arc::clone(&self.0),
            held: AtomicUsize::new(0),
            unclaimed: AtomicUsize::new(0),
            kept: AtomicUsize::new(0),
        })
    }

    /// Bytes read and not yet handled, over every connection.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.0.held.load(Ordering::Acquire)
    }

    /// Bytes of buffers kept for long frames, over every connection.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.0.kept.load(Ordering::Acquire)
    }
}

/// What one connection has read and the node not yet handled.
pub(crate) struct Meter {
    shared: Arc<Shared>,
    /// Bytes read and not yet handled.
    held: AtomicUsize,
    /// Bytes read since the last message ended: the next message's charge.
    unclaimed: AtomicUsize,
    /// The buffer counted as kept for this connection: its longest message over
    /// [`KEPT_FROM`].
    kept: AtomicUsize,
}

impl Meter {
    /// A message ended: the bytes read since the one before are its charge, to give back
    /// with [`Meter::handled`] once the node has handled it.
    pub(crate) fn claim(&self) -> usize {
        self.unclaimed.swap(0, Ordering::AcqRel)
    }

    /// A message charged `charge` ended: if it is long, the connection keeps a buffer as
    /// long, counted against the node's budget of them until the connection ends; an
    /// error if that budget has no room (the connection must be closed).
    pub(crate) fn keep(&self, charge: usize) -> Result<(), TooMuchKept> {
        let mine = self.kept.load(Ordering::Acquire);
        if charge <= KEPT_FROM || charge <= mine {
            return Ok(());
        }
        let more = charge - mine;
        let limit = self.shared.kept_limit;
        let all = self.shared.kept.fetch_add(more, Ordering::AcqRel);
        if all + more > limit {
            self.shared.kept.fetch_sub(more, Ordering::AcqRel);
            return Err(TooMuchKept {
                bytes: charge,
                limit,
            });
        }
        self.kept.store(charge, Ordering::Release);
        Ok(())
    }

    /// The node handled a message charged `charge` (or it was dropped).
    pub(crate) fn handled(&self, charge: usize) {
        if charge == 0 {
            return;
        }
        let mine = self.held.fetch_sub(charge, Ordering::AcqRel);
        let all = self.shared.held.fetch_sub(charge, Ordering::AcqRel);
        let per = self.shared.per_connection;
        let total = self.shared.total;
        if (mine >= per && mine - charge < per) || (all >= total && all - charge < total) {
            self.shared.drained.notify(usize::MAX);
        }
    }

    fn read(&self, bytes: usize) {
        self.held.fetch_add(bytes, Ordering::AcqRel);
        self.shared.held.fetch_add(bytes, Ordering::AcqRel);
        self.unclaimed.fetch_add(bytes, Ordering::AcqRel);
    }

    /// A message is under way: bytes of it were read and it has not ended.
    fn under_way(&self) -> bool {
        self.unclaimed.load(Ordering::Acquire) > 0
    }

    /// Whether the connection may read now.
    fn may_read(&self) -> bool {
        if self.shared.held.load(Ordering::Acquire) >= self.shared.total {
            return false;
        }
        self.under_way() || self.held.load(Ordering::Acquire) < self.shared.per_connection
    }
}

/// A socket whose reads are charged to a [`Meter`] and wait for its budgets.
pub(crate) struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
    /// Waiting for bytes to be given back.
    waiting: Option<EventListener>,
    /// When the message under way must have ended, while one is.
    deadline: Alarm,
    armed: bool,
}

impl<S> Metered<S> {
    pub(crate) fn new(inner: S, meter: Arc<Meter>) -> Metered<S> {
        Metered {
            inner,
            meter,
            waiting: None,
            deadline: Alarm::new(),
            armed: false,
        }
    }
}

impl<S> Drop for Metered<S> {
    fn drop(&mut self) {
        // A message left unfinished: its bytes are gone with the socket's buffers, and so
        // is a buffer kept for a long frame.
        self.meter.handled(self.meter.claim());
        let kept = self.meter.kept.swap(0, Ordering::AcqRel);
        self.meter.shared.kept.fetch_sub(kept, Ordering::AcqRel);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.armed && !this.meter.under_way() {
            this.armed = false;
            this.deadline.set(None);
        }
        if this.armed && Pin::new(&mut this.deadline.ring()).poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "a message begun was not finished within {:?}",
                    this.meter.shared.message_deadline
                ),
            )));
        }
        while !this.meter.may_read() {
            match &mut this.waiting {
                // Listen, then look again: bytes given back in between are not missed.
                None => this.waiting = Some(this.meter.shared.drained.listen()),
                Some(listener) => match Pin::new(listener).poll(cx) {
                    Poll::Ready(()) => this.waiting = None,
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
        this.waiting = None;
        let at_most = buf.len().min(READ_AT_ONCE);
        let read = Pin::new(&mut this.inner).poll_read(cx, &mut buf[..at_most]);
        if let Poll::Ready(Ok(bytes)) = read {
            if bytes > 0 {
                this.meter.read(bytes);
                if !this.armed {
                    this.armed = true;
                    this.deadline
                        .set(Some(Instant::now() + this.meter.shared.message_deadline));
                }
            }
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime;
    use futures::io::AsyncReadExt;
    use futures::FutureExt;

    /// A socket that has `bytes` to give, then nothing more, ever (it never ends).
    struct Trickle {
        bytes: Vec<u8>,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if this.bytes.is_empty() {
                return Poll::Pending;
            }
            let n = buf.len().min(this.bytes.len());
            buf[..n].copy_from_slice(&this.bytes[..n]);
            this.bytes.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    fn socket(budget: &Budget, bytes: usize) -> (Metered<Trickle>, Arc<Meter>) {
        let meter = budget.meter();
        let trickle = Trickle {
            bytes: vec![b'x'; bytes],
        };
        (Metered::new(trickle, Arc::clone(&meter)), meter)
    }

    /// Reads once if a read is possible at once: `None` if it would wait.
    fn read_now(socket: &mut Metered<Trickle>, at_most: usize) -> Option<io::Result<usize>> {
        let mut buf = vec![0; at_most];
        socket.read(&mut buf).now_or_never()
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn bytes_read_are_charged_to_their_message_and_given_back_once_handled() {
        let budget = Budget::new(1000, 1000, LONG, 1 << 20);
        let (mut socket, meter) = socket(&budget, 300);
        assert_eq!(read_now(&mut socket, 100).unwrap().unwrap(), 100);
        assert_eq!(read_now(&mut socket, 100).unwrap().unwrap(), 100);
        assert_eq!(budget.held(), 200);
        let charge = meter.claim();
        assert_eq!(charge, 200);
        assert_eq!(meter.claim(), 0, "a charge is claimed once");
        assert_eq!(budget.held(), 200, "held until the node handled it");
        meter.handled(charge);
        assert_eq!(budget.held(), 0);
        // A message left unfinished is given back with the socket.
        assert_eq!(read_now(&mut socket, 50).unwrap().unwrap(), 50);
        assert_eq!(budget.held(), 50);
        drop(socket);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_connection_over_its_budget_finishes_its_message_then_waits_for_the_node() {
        let budget = Budget::new(10_000, 100, LONG, 1 << 20);
        let (mut socket, meter) = socket(&budget, 1000);
        assert_eq!(read_now(&mut socket, 150).unwrap().unwrap(), 150);
        // Over its budget, in the middle of a message: it reads on.
        assert_eq!(read_now(&mut socket, 50).unwrap().unwrap(), 50);
        // The message ends: no new one begins until the node handled enough.
        let charge = meter.claim();
        assert!(read_now(&mut socket, 50).is_none());
        meter.handled(charge);
        assert_eq!(read_now(&mut socket, 50).unwrap().unwrap(), 50);
    }

    #[test]
    fn a_full_node_budget_stops_every_connection_until_bytes_are_given_back() {
        let budget = Budget::new(100, 1000, LONG, 1 << 20);
        let (mut a, meter_a) = socket(&budget, 1000);
        let (mut b, _) = socket(&budget, 1000);
        assert_eq!(read_now(&mut a, 100).unwrap().unwrap(), 100);
        // Neither the other connection nor this one, in the middle of its message.
        assert!(read_now(&mut b, 10).is_none());
        assert!(read_now(&mut a, 10).is_none());
        let charge = meter_a.claim();
        // A waiting reader is woken when the node gives bytes back.
        runtime::block_on(async {
            let mut buf = [0; 10];
            let waiting = b.read(&mut buf);
            let handle = async {
                runtime::sleep(Duration::from_millis(20)).await;
                meter_a.handled(charge);
                std::future::pending::<()>().await;
            };
            let read = runtime::timeout(
                Duration::from_secs(5),
                futures::future::select(Box::pin(waiting), Box::pin(handle)),
            )
            .await;
            match read {
                Some(futures::future::Either::Left((Ok(10), _))) => {}
                _ => panic!("the waiting reader did not read once bytes were given back"),
            }
        });
    }

    #[test]
    fn a_message_left_unfinished_fails_its_connection_at_the_deadline() {
        let deadline = Duration::from_millis(100);
        let budget = Budget::new(10_000, 10_000, deadline, 1 << 20);
        let (mut socket, meter) = socket(&budget, 50);
        runtime::block_on(async {
            let mut buf = [0; 100];
            let started = Instant::now();
            assert_eq!(socket.read(&mut buf).await.unwrap(), 50);
            // The peer sends no more of its message.
            let failed = runtime::timeout(Duration::from_secs(5), socket.read(&mut buf)).await;
            let error = failed
                .expect("no deadline")
                .expect_err("read on after the deadline");
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            assert!(started.elapsed() >= deadline);
        });
        drop(socket);
        assert_eq!(
            budget.held(),
            0,
            "the failed connection's bytes are given back"
        );
        // A connection between messages has no deadline.
        let (mut idle, idle_meter) = socket_between_messages(&budget);
        runtime::block_on(async {
            let mut buf = [0; 100];
            let waited = runtime::timeout(3 * deadline, idle.read(&mut buf)).await;
            assert!(
                waited.is_none(),
                "an idle connection was failed: {waited:?}"
            );
        });
        drop((meter, idle_meter));
    }

    /// A connection that read a whole message (claimed and handled) and waits for the next.
    fn socket_between_messages(budget: &Budget) -> (Metered<Trickle>, Arc<Meter>) {
        let (mut socket, meter) = socket(budget, 20);
        assert_eq!(read_now(&mut socket, 20).unwrap().unwrap(), 20);
        meter.handled(meter.claim());
        (socket, meter)
    }

    #[test]
    fn long_messages_keep_buffers_within_the_budget_and_give_them_back_with_their_connection() {
        let long = KEPT_FROM + 1;
        let budget = Budget::new(1 << 30, 1 << 30, LONG, 2 * long + 10);
        let (a, meter_a) = socket(&budget, 0);
        let (b, meter_b) = socket(&budget, 0);
        let (_c, meter_c) = socket(&budget, 0);
        // Short messages keep nothing; a long one keeps its length.
        meter_a.keep(KEPT_FROM).unwrap();
        assert_eq!(budget.kept(), 0);
        meter_a.keep(long).unwrap();
        assert_eq!(budget.kept(), long);
        // A shorter one on the same connection keeps no more; a longer one the difference.
        meter_a.keep(long - 1).unwrap();
        meter_a.keep(long + 10).unwrap();
        assert_eq!(budget.kept(), long + 10);
        meter_b.keep(long).unwrap();
        // No room for a third: refused, and nothing counted for it.
        assert!(meter_c.keep(long).is_err());
        assert_eq!(budget.kept(), 2 * long + 10);
        // A connection that ends gives its buffer back.
        drop(a);
        assert_eq!(budget.kept(), long);
        meter_c.keep(long).unwrap();
        drop(b);
        assert_eq!(budget.kept(), long);
    }
}
