//! Every call into the async runtime lives here, so that moving from async-std (in
//! maintenance) to smol or another runtime is a change to this one file.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::WebSocketStream;
use futures::io::{AsyncRead, AsyncWrite};

pub(crate) use async_std::net::TcpStream;

/// A WebSocket over TCP, dialled or accepted.
pub(crate) type Socket = WebSocketStream<TcpStream>;

/// Runs a future to completion on the current thread, and with it the tasks that
/// [`spawn`] starts from it.
///
/// The node's work is one task (the core is single-threaded by design) plus light
/// per-connection tasks on the same thread, so unless `ASYNC_STD_THREAD_COUNT` says
/// otherwise the executor's own pool gets one thread, which runs nothing of ours.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    if std::env::var_os("ASYNC_STD_THREAD_COUNT").is_none() {
        // Safe here: called before the runtime, or any other thread, starts.
        std::env::set_var("ASYNC_STD_THREAD_COUNT", "1");
    }
    async_std::task::block_on(future)
}

/// Runs a future in the background, on the thread of the [`block_on`] that calls this.
///
/// Connection tasks run beside the node's loop on one thread, not on the executor's
/// thread: a frame read is handled without crossing threads (fewer wake-ups), and
/// frames are allocated and freed by the thread that holds the pool, so glibc keeps one
/// heap for both instead of a second arena holding what the readers once buffered (see
/// BENCHMARKS.md, issue 10).
pub(crate) fn spawn<F>(future: F)
where
    F: Future<Output = ()> + 'static,
{
    async_global_executor::spawn_local(future).detach();
}

/// Waits for `duration`.
pub(crate) async fn sleep(duration: Duration) {
    async_std::task::sleep(duration).await;
}

/// The node loop's wake-up: one timer kept across the loop's turns and re-armed only when
/// its instant changes.
///
/// A timer made afresh each turn (as [`timeout`] does) is registered with the reactor each
/// time, and each registration wakes the thread that waits on the reactor (async-io's own
/// while the node's thread works) to re-arm its clock: two thread switches more for every
/// frame a node handles. The node's next deadline seldom moves from one frame to the next.
pub(crate) struct Alarm {
    timer: async_io::Timer,
    /// The instant the timer is armed for (`None`: not armed, or rung since).
    at: Option<Instant>,
}

impl Alarm {
    /// An alarm that never rings until [`Alarm::set`].
    pub(crate) fn new() -> Alarm {
        Alarm {
            timer: async_io::Timer::never(),
            at: None,
        }
    }

    /// Rings at `at` (at once if it has passed), or never if `None`.
    pub(crate) fn set(&mut self, at: Option<Instant>) {
        if at == self.at {
            return;
        }
        match at {
            Some(at) => self.timer.set_at(at),
            None => self.timer.clear(),
        }
        self.at = at;
    }

    /// Waits until the alarm rings; it is then unarmed until the next [`Alarm::set`].
    pub(crate) fn ring(&mut self) -> Ring<'_> {
        Ring(self)
    }
}

/// The future of [`Alarm::ring`].
pub(crate) struct Ring<'a>(&'a mut Alarm);

impl Future for Ring<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let alarm = &mut *self.get_mut().0;
        if alarm.at.is_none() {
            return Poll::Pending;
        }
        match Pin::new(&mut alarm.timer).poll(cx) {
            Poll::Ready(_) => {
                alarm.at = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `future`'s output, or `None` if it takes longer than `duration`.
pub(crate) async fn timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    async_std::future::timeout(duration, future).await.ok()
}

/// A TCP listener.
pub(crate) struct Listener(async_std::net::TcpListener);

impl Listener {
    /// Binds a listener to `address`.
    pub(crate) async fn bind(address: SocketAddr) -> io::Result<Listener> {
        async_std::net::TcpListener::bind(address)
            .await
            .map(Listener)
    }

    /// The next connection.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.0.accept().await
    }

    /// The address it is bound to.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// How long a connection may stay silent (no ACK for data sent, or no answer to TCP
/// keepalive probes) before the kernel declares it dead: a peer whose machine vanished
/// or whose link went down is noticed, closed and redialled, instead of holding a
/// connection that eats frames forever.
const DEAD_AFTER: Duration = Duration::from_secs(20);

/// Sets the options every node connection gets: no Nagle delay (frames are small and
/// batched already), and keepalive probes with a user timeout so dead peers are noticed.
pub(crate) fn tune(stream: &TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let _ = socket.set_tcp_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(DEAD_AFTER / 2)
        .with_interval(DEAD_AFTER / 8)
        .with_retries(4);
    let _ = socket.set_tcp_keepalive(&keepalive);
    let _ = socket.set_tcp_user_timeout(Some(DEAD_AFTER));
}

/// Opens a WebSocket to `ws://host:port`, over the TCP stream as `wrap` makes it.
pub(crate) async fn connect<S>(
    host: &str,
    port: u16,
    config: WebSocketConfig,
    wrap: impl FnOnce(TcpStream) -> S,
) -> Result<WebSocketStream<S>, async_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stream =
        TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port)).await?;
    tune(&stream);
    let url = format!("ws://{host}:{port}/");
    let (socket, _response) =
        async_tungstenite::client_async_with_config(url, wrap(stream), Some(config)).await?;
    Ok(socket)
}

/// Completes the WebSocket handshake on an accepted stream.
pub(crate) async fn accept<S>(
    stream: S,
    config: WebSocketConfig,
) -> Result<WebSocketStream<S>, async_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async_tungstenite::accept_async_with_config(stream, Some(config)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_alarm_rings_at_its_instant_once_and_again_when_set_again() {
        block_on(async {
            let mut alarm = Alarm::new();
            // Never set: it does not ring.
            assert!(timeout(20 * MS, alarm.ring()).await.is_none());
            let at = Instant::now() + 30 * MS;
            alarm.set(Some(at));
            alarm.set(Some(at));
            alarm.ring().await;
            assert!(Instant::now() >= at);
            // Rung: silent until set, even to the same instant (now passed: at once).
            assert!(timeout(20 * MS, alarm.ring()).await.is_none());
            alarm.set(Some(at));
            assert!(timeout(20 * MS, alarm.ring()).await.is_some());
            // Moved later, then cleared: it does not ring.
            alarm.set(Some(Instant::now() + 10 * MS));
            alarm.set(None);
            assert!(timeout(40 * MS, alarm.ring()).await.is_none());
        });
    }
}
