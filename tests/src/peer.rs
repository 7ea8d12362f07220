//! Test peers: a WebSocket server that records what nodes send it, and a client that sends a
//! node whatever a test likes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_std::future::timeout;
use async_std::net::{TcpListener, TcpStream};
use async_std::task::{self, JoinHandle};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures::{SinkExt, StreamExt};
use serde_json::Value;

use crate::folder::address;
use crate::wait::wait_for;

/// One thing that arrived on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The connection ended (a close frame, an error or end of stream).
    Closed,
}

impl Frame {
    /// The frame parsed as JSON, if it is a text frame holding JSON.
    pub fn json(&self) -> Option<Value> {
        match self {
            Frame::Text(text) => serde_json::from_str(text).ok(),
            _ => None,
        }
    }

    /// The address list of a `HANDSHAKE` frame (each entry as its JSON text unless a string).
    pub fn handshake(&self) -> Option<Vec<String>> {
        let frame = self.json()?;
        if frame["type"] != "HANDSHAKE" {
            return None;
        }
        let list = frame["data"].as_array()?;
        Some(
            list.iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect(),
        )
    }
}

type Connections = Arc<Mutex<Vec<Vec<Frame>>>>;

/// A WebSocket server on `ws://localhost:PORT` that nodes can dial. It records every frame
/// received on every accepted connection (per connection, in order), can greet each new
/// connection with frames of its own, and stops (dropping every connection) on
/// [`TestPeer::close`] or drop.
#[derive(Debug)]
pub struct TestPeer {
    port: u16,
    connections: Connections,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    listeners: Vec<JoinHandle<()>>,
}

impl TestPeer {
    /// Listens on `port` (127.0.0.1, and ::1 where the machine has it); panics if it cannot.
    pub fn bind(port: u16) -> TestPeer {
        TestPeer::bind_greeting(port, Vec::new())
    }

    /// Like [`TestPeer::bind`], and sends `greeting` on every connection it accepts.
    pub fn bind_greeting(port: u16, greeting: Vec<Message>) -> TestPeer {
        let v4 = task::block_on(TcpListener::bind(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            port,
        ))))
        .unwrap_or_else(|e| panic!("test peer cannot listen on 127.0.0.1:{port}: {e}"));
        // `localhost` may resolve to ::1 first; a dialler falls back to 127.0.0.1 if nothing
        // is there, but listening on both takes the question away.
        let v6 = task::block_on(TcpListener::bind(SocketAddr::from((
            Ipv6Addr::LOCALHOST,
            port,
        ))))
        .ok();
        let connections: Connections = Arc::default();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let greeting = Arc::new(greeting);
        let listeners = [Some(v4), v6]
            .into_iter()
            .flatten()
            .map(|listener| {
                task::spawn(accept_loop(
                    listener,
                    connections.clone(),
                    tasks.clone(),
                    greeting.clone(),
                ))
            })
            .collect();
        TestPeer {
            port,
            connections,
            tasks,
            listeners,
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address, `ws://localhost:PORT`.
    pub fn address(&self) -> String {
        address(self.port)
    }

    /// Every accepted connection's frames so far, in order of acceptance.
    pub fn connections(&self) -> Vec<Vec<Frame>> {
        lock(&self.connections).clone()
    }

    /// The address list of every `HANDSHAKE` received so far, connection by connection.
    pub fn handshakes(&self) -> Vec<Vec<String>> {
        lock(&self.connections)
            .iter()
            .flatten()
            .filter_map(Frame::handshake)
            .collect()
    }

    /// Waits up to `limit` for a `HANDSHAKE` whose list satisfies `wanted` and returns it;
    /// panics with every frame received if none comes.
    pub fn wait_for_handshake(
        &self,
        limit: Duration,
        mut wanted: impl FnMut(&[String]) -> bool,
    ) -> Vec<String> {
        wait_for(limit, || {
            self.handshakes().into_iter().find(|list| wanted(list))
        })
        .unwrap_or_else(|| {
            panic!(
                "test peer {} got no wanted HANDSHAKE within {limit:?}; it received: {}",
                self.address(),
                describe(&self.connections())
            )
        })
    }

    /// Stops listening and drops every connection it accepted.
    pub fn close(&mut self) {
        let listeners: Vec<_> = self.listeners.drain(..).collect();
        task::block_on(async {
            for listener in listeners {
                listener.cancel().await;
            }
        });
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        task::block_on(async {
            for connection in tasks {
                connection.cancel().await;
            }
        });
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.close();
    }
}

/// A readable account of what a test peer received, with long frames clipped.
pub(crate) fn describe(connections: &[Vec<Frame>]) -> String {
    let mut out = String::new();
    for (index, frames) in connections.iter().enumerate() {
        out.push_str(&format!("\n  connection {index}:"));
        for frame in frames {
            let line = match frame {
                Frame::Text(text) => crate::folder::clip(text, 300),
                Frame::Binary(bytes) => format!("<binary, {} bytes>", bytes.len()),
                Frame::Closed => "<closed>".to_owned(),
            };
            out.push_str(&format!("\n    {line}"));
        }
    }
    if connections.is_empty() {
        out.push_str("no connection");
    }
    out
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the data as usable as before.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    connections: Connections,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    greeting: Arc<Vec<Message>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: let it pass rather than spin.
            task::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let index = {
            let mut connections = lock(&connections);
            connections.push(Vec::new());
            connections.len() - 1
        };
        let handle = task::spawn(serve(stream, index, connections.clone(), greeting.clone()));
        lock(&tasks).push(handle);
    }
}

async fn serve(
    stream: TcpStream,
    index: usize,
    connections: Connections,
    greeting: Arc<Vec<Message>>,
) {
    let record = |frame: Frame| lock(&connections)[index].push(frame);
    let Ok(mut ws) = async_tungstenite::accept_async(stream).await else {
        record(Frame::Closed);
        return;
    };
    for message in greeting.iter() {
        if ws.send(message.clone()).await.is_err() {
            break;
        }
    }
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(text)) => record(Frame::Text(text.as_str().to_owned())),
            Ok(Message::Binary(bytes)) => record(Frame::Binary(bytes.to_vec())),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    record(Frame::Closed);
}

/// A WebSocket connection dialled to a node, to send it arbitrary frames.
#[derive(Debug)]
pub struct Client {
    port: u16,
    ws: WebSocketStream<TcpStream>,
}

impl Client {
    /// Dials `ws://localhost:PORT`.
    pub fn connect(port: u16) -> Result<Client, String> {
        task::block_on(async {
            let connecting = async {
                let stream = TcpStream::connect(("localhost", port))
                    .await
                    .map_err(|e| format!("cannot connect to port {port}: {e}"))?;
                let (ws, _) = async_tungstenite::client_async(address(port), stream)
                    .await
                    .map_err(|e| format!("no WebSocket handshake with port {port}: {e}"))?;
                Ok(Client { port, ws })
            };
            timeout(Duration::from_secs(10), connecting)
                .await
                .unwrap_or_else(|_| Err(format!("connecting to port {port} took over 10 s")))
        })
    }

    /// Sends one frame (waiting up to 30 s for it to be written).
    pub fn send(&mut self, message: Message) -> Result<(), String> {
        let port = self.port;
        task::block_on(async {
            timeout(Duration::from_secs(30), self.ws.send(message))
                .await
                .map_err(|_| format!("sending to port {port} took over 30 s"))?
                .map_err(|e| format!("cannot send to port {port}: {e}"))
        })
    }

    /// Sends every frame of `frames` as text as fast as the connection takes them (one
    /// flush at the end; the WebSocket layer writes out whenever its buffer fills), within
    /// `limit` for the lot: how a burst of thousands of transactions is sent.
    pub fn send_all(
        &mut self,
        frames: impl IntoIterator<Item = String>,
        limit: Duration,
    ) -> Result<(), String> {
        let port = self.port;
        task::block_on(async {
            let sending = async {
                for frame in frames {
                    self.ws.feed(Message::text(frame)).await?;
                }
                self.ws.flush().await
            };
            timeout(limit, sending)
                .await
                .map_err(|_| format!("sending to port {port} took over {limit:?}"))?
                .map_err(|e| format!("cannot send to port {port}: {e}"))
        })
    }

    /// The WebSocket itself, for a test that reads and writes at once.
    pub fn into_inner(self) -> WebSocketStream<TcpStream> {
        self.ws
    }

    /// Sends one text frame.
    pub fn send_text(&mut self, text: impl Into<String>) -> Result<(), String> {
        self.send(Message::text(text.into()))
    }

    /// Sends `value` as one text frame of JSON.
    pub fn send_json(&mut self, value: &Value) -> Result<(), String> {
        self.send_text(value.to_string())
    }

    /// Sends one binary frame.
    pub fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.send(Message::binary(bytes))
    }

    /// The next frame the node sends on this connection, if one comes within `limit`.
    pub fn receive(&mut self, limit: Duration) -> Option<Frame> {
        task::block_on(async {
            let next = async {
                loop {
                    match self.ws.next().await {
                        Some(Ok(Message::Text(text))) => {
                            break Frame::Text(text.as_str().to_owned())
                        }
                        Some(Ok(Message::Binary(bytes))) => break Frame::Binary(bytes.to_vec()),
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Frame::Closed,
                        // Pings and pongs are answered by the stream itself.
                        Some(Ok(_)) => {}
                    }
                }
            };
            timeout(limit, next).await.ok()
        })
    }

    /// Closes the connection politely (close frame), waiting at most a second.
    pub fn close(mut self) {
        task::block_on(async {
            let _ = timeout(Duration::from_secs(1), self.ws.close(None)).await;
        });
    }
}
