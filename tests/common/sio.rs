//! A minimal Socket.IO v5 / Engine.IO v4 client over WebSocket for Rust tests: connect with an
//! optional auth payload, receive events with all their arguments, send commands with acks.
//! The JavaScript and Python suites test the real client libraries; this one keeps the Rust
//! tests self-contained.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ack: u64,
    /// Events received while waiting for something else, in arrival order.
    backlog: std::collections::VecDeque<(String, Vec<Value>)>,
}

/// A message from the server.
enum Incoming {
    Event(String, Vec<Value>),
    Ack(u64, Vec<Value>),
    Other,
}

impl Client {
    pub async fn connect(addr: SocketAddr, auth: Option<Value>) -> Client {
        Self::try_connect(addr, auth)
            .await
            .expect("socket connects")
    }

    /// Connects and completes the namespace handshake; `Err` carries a CONNECT_ERROR payload.
    pub async fn try_connect(addr: SocketAddr, auth: Option<Value>) -> Result<Client, Value> {
        Self::try_connect_query(addr, "", auth).await
    }

    /// Like [`Client::try_connect`] with extra query parameters (`&token=…`).
    pub async fn try_connect_query(
        addr: SocketAddr,
        query: &str,
        auth: Option<Value>,
    ) -> Result<Client, Value> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket{query}");
        let (mut ws, _) = connect_async(url).await.expect("websocket handshake");
        let open = next_text(&mut ws).await;
        assert!(
            open.starts_with('0'),
            "expected an Engine.IO open packet, got {open}"
        );
        let connect = match auth {
            Some(a) => format!("40{a}"),
            None => "40".to_owned(),
        };
        ws.send(Message::text(connect)).await.expect("send connect");
        loop {
            let text = next_text(&mut ws).await;
            if let Some(rest) = text.strip_prefix("40") {
                assert!(rest.contains("sid"), "connect reply without sid: {text}");
                break;
            }
            if let Some(rest) = text.strip_prefix("44") {
                return Err(serde_json::from_str(rest).unwrap_or(Value::String(rest.to_owned())));
            }
            if text == "2" {
                ws.send(Message::text("3")).await.expect("pong");
            }
        }
        Ok(Client {
            ws,
            next_ack: 0,
            backlog: Default::default(),
        })
    }

    async fn read(&mut self) -> Incoming {
        loop {
            let text = next_text(&mut self.ws).await;
            if text == "2" {
                self.ws.send(Message::text("3")).await.expect("pong");
                continue;
            }
            if let Some(rest) = text.strip_prefix("42") {
                let mut args: Vec<Value> = serde_json::from_str(rest).expect("event array");
                let name = args.remove(0).as_str().expect("event name").to_owned();
                return Incoming::Event(name, args);
            }
            if let Some(rest) = text.strip_prefix("43") {
                let split = rest.find('[').expect("ack payload");
                let id = rest[..split].parse().expect("ack id");
                return Incoming::Ack(id, serde_json::from_str(&rest[split..]).expect("ack array"));
            }
            return Incoming::Other;
        }
    }

    /// Next event with all its arguments, waiting at most `within`.
    pub async fn next_event_within(&mut self, within: Duration) -> Option<(String, Vec<Value>)> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e);
        }
        tokio::time::timeout(within, async {
            loop {
                if let Incoming::Event(name, args) = self.read().await {
                    return (name, args);
                }
            }
        })
        .await
        .ok()
    }

    /// Next event, failing the test after 5 s.
    pub async fn next_event(&mut self) -> (String, Vec<Value>) {
        self.next_event_within(Duration::from_secs(5))
            .await
            .expect("an event within 5 s")
    }

    /// Sends raw `args` (already a JSON array after the event name) and waits for the ack.
    pub async fn call_raw(&mut self, event: &str, args: &[Value]) -> Vec<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        let mut packet = vec![Value::String(event.to_owned())];
        packet.extend_from_slice(args);
        self.ws
            .send(Message::text(format!("42{id}{}", Value::Array(packet))))
            .await
            .expect("send command");
        tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match self.read().await {
                    Incoming::Ack(got, args) if got == id => return args,
                    Incoming::Event(name, args) => self.backlog.push_back((name, args)),
                    _ => {}
                }
            }
        })
        .await
        .expect("ack within 15 s")
    }

    /// Sends one payload and returns the single ack argument.
    pub async fn call(&mut self, event: &str, payload: Value) -> Value {
        let mut args = self.call_raw(event, &[payload]).await;
        assert_eq!(args.len(), 1, "ack has one argument");
        args.remove(0)
    }

    pub async fn close(mut self) {
        let _ = self.ws.send(Message::text("41")).await;
        let _ = self.ws.close(None).await;
    }
}

async fn next_text(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("server sent something within 30 s")
            .expect("socket stays open")
            .expect("websocket frame");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Close(frame) => panic!("server closed the socket: {frame:?}"),
            _ => {}
        }
    }
}
