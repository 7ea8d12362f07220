//! Servers that swallow what a node sends them: a [`BlackHole`] accepts TCP connections and
//! never answers the WebSocket upgrade, so a dial to it hangs until the dialler gives up; a
//! [`StallingPeer`] completes the WebSocket handshake, reads the node's HANDSHAKE and then
//! stops reading, so everything the node sends it piles up.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_std::future::timeout;
use async_std::io::ReadExt;
use async_std::net::{TcpListener, TcpStream};
use async_std::task::{self, JoinHandle};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures::StreamExt;

use crate::folder::address;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Tasks = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// Binds `port` on 127.0.0.1 (panics if it cannot) and on ::1 where the machine has it:
/// `localhost` may resolve to either.
fn bind_loopback(port: u16) -> Vec<TcpListener> {
    let v4 = task::block_on(TcpListener::bind(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        port,
    ))))
    .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
    let v6 = task::block_on(TcpListener::bind(SocketAddr::from((
        Ipv6Addr::LOCALHOST,
        port,
    ))))
    .ok();
    [Some(v4), v6].into_iter().flatten().collect()
}

/// Cancels every task (at once, on the test's thread).
fn cancel_all(tasks: Vec<JoinHandle<()>>) {
    task::block_on(async {
        for handle in tasks {
            handle.cancel().await;
        }
    });
}

/// TCP servers on `ws://localhost:PORT` for each of its ports that accept every connection,
/// read whatever comes, and never answer: a WebSocket dial to one hangs until the dialler
/// abandons it. Each connection is recorded, and whether the dialler has closed it since.
/// Stops (dropping every connection) on drop.
#[derive(Debug)]
pub struct BlackHole {
    ports: Vec<u16>,
    /// One entry per accepted connection, in order: whether the dialler closed it since.
    closed: Arc<Mutex<Vec<bool>>>,
    tasks: Tasks,
    listeners: Vec<JoinHandle<()>>,
}

impl BlackHole {
    /// Listens on every port of `ports`; panics if it cannot.
    pub fn bind(ports: impl IntoIterator<Item = u16>) -> BlackHole {
        let closed: Arc<Mutex<Vec<bool>>> = Arc::default();
        let tasks: Tasks = Arc::default();
        let ports: Vec<u16> = ports.into_iter().collect();
        let listeners = ports
            .iter()
            .flat_map(|&port| bind_loopback(port))
            .map(|listener| task::spawn(swallow(listener, closed.clone(), tasks.clone())))
            .collect();
        BlackHole {
            ports,
            closed,
            tasks,
            listeners,
        }
    }

    /// The addresses of its ports, `ws://localhost:PORT`.
    pub fn addresses(&self) -> Vec<String> {
        self.ports.iter().map(|&port| address(port)).collect()
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        lock(&self.closed).len()
    }

    /// For each accepted connection, in order, whether the dialler has closed it.
    pub fn closed_by_dialler(&self) -> Vec<bool> {
        lock(&self.closed).clone()
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        cancel_all(self.listeners.drain(..).collect());
        cancel_all(lock(&self.tasks).drain(..).collect());
    }
}

async fn swallow(listener: TcpListener, closed: Arc<Mutex<Vec<bool>>>, tasks: Tasks) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            task::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let index = {
            let mut closed = lock(&closed);
            closed.push(false);
            closed.len() - 1
        };
        let closed = closed.clone();
        let reader = task::spawn(async move {
            let mut buffer = [0u8; 4096];
            // Read and drop the upgrade request; never write a byte back.
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            lock(&closed)[index] = true;
        });
        lock(&tasks).push(reader);
    }
}

/// What reading a stalled connection to its end found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Frames read after the HANDSHAKE.
    pub frames: usize,
    /// Whether the connection ended (close frame, end of stream or reset) within the limit.
    pub ended: bool,
}

enum Slot {
    /// Handshaking, or waiting for the node's HANDSHAKE.
    Opening,
    /// Got the HANDSHAKE; no longer read.
    Stalled(Box<WebSocketStream<TcpStream>>),
    /// Handed to [`StallingPeer::resume`].
    Resumed,
    /// The WebSocket handshake failed, or the connection ended before a HANDSHAKE.
    Failed,
}

/// A WebSocket server on `ws://localhost:PORT` that a node can dial: on each connection it
/// reads frames until the node's `HANDSHAKE`, then stops reading (the socket stays open, so
/// what the node sends fills the socket buffers and then the node's own queue), until the
/// test [resumes](StallingPeer::resume) reading it. Stops on drop.
pub struct StallingPeer {
    port: u16,
    slots: Arc<Mutex<Vec<Slot>>>,
    tasks: Tasks,
    listeners: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for StallingPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StallingPeer({})", self.address())
    }
}

impl StallingPeer {
    /// Listens on `port`; panics if it cannot.
    pub fn bind(port: u16) -> StallingPeer {
        let slots: Arc<Mutex<Vec<Slot>>> = Arc::default();
        let tasks: Tasks = Arc::default();
        let listeners = bind_loopback(port)
            .into_iter()
            .map(|listener| task::spawn(stall(listener, slots.clone(), tasks.clone())))
            .collect();
        StallingPeer {
            port,
            slots,
            tasks,
            listeners,
        }
    }

    /// Its address, `ws://localhost:PORT`.
    pub fn address(&self) -> String {
        address(self.port)
    }

    /// How many connections it has accepted (WebSocket handshake begun).
    pub fn connections(&self) -> usize {
        lock(&self.slots).len()
    }

    /// How many connections it got a HANDSHAKE on and stopped reading.
    pub fn stalled(&self) -> usize {
        lock(&self.slots)
            .iter()
            .filter(|slot| matches!(slot, Slot::Stalled(_) | Slot::Resumed))
            .count()
    }

    /// Reads connection `index` (0 for the first accepted) again, to its end or for at most
    /// `limit`; panics unless it is a stalled connection not resumed before.
    pub fn resume(&self, index: usize, limit: Duration) -> Resumed {
        let mut ws = {
            let mut slots = lock(&self.slots);
            match slots
                .get_mut(index)
                .map(|slot| std::mem::replace(slot, Slot::Resumed))
            {
                Some(Slot::Stalled(ws)) => ws,
                _ => panic!(
                    "connection {index} to {} is not a stalled connection",
                    self.address()
                ),
            }
        };
        task::block_on(async {
            let deadline = Instant::now() + limit;
            let mut frames = 0;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match timeout(left, ws.next()).await {
                    Err(_) => {
                        return Resumed {
                            frames,
                            ended: false,
                        }
                    }
                    Ok(Some(Ok(Message::Text(_) | Message::Binary(_)))) => frames += 1,
                    Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => {
                        return Resumed {
                            frames,
                            ended: true,
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                }
            }
        })
    }
}

impl Drop for StallingPeer {
    fn drop(&mut self) {
        cancel_all(self.listeners.drain(..).collect());
        cancel_all(lock(&self.tasks).drain(..).collect());
        lock(&self.slots).clear();
    }
}

async fn stall(listener: TcpListener, slots: Arc<Mutex<Vec<Slot>>>, tasks: Tasks) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            task::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let index = {
            let mut slots = lock(&slots);
            slots.push(Slot::Opening);
            slots.len() - 1
        };
        let slots = slots.clone();
        let handle = task::spawn(async move {
            let Ok(mut ws) = async_tungstenite::accept_async(stream).await else {
                lock(&slots)[index] = Slot::Failed;
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                let handshake = message.to_text().is_ok_and(|text| {
                    serde_json::from_str::<serde_json::Value>(text)
                        .is_ok_and(|frame| frame["type"] == "HANDSHAKE")
                });
                if handshake {
                    lock(&slots)[index] = Slot::Stalled(Box::new(ws));
                    return;
                }
            }
            lock(&slots)[index] = Slot::Failed;
        });
        lock(&tasks).push(handle);
    }
}
