//! The WebSocket write path for sessions that start on a plain TCP WebSocket: packets are
//! framed straight into the connection's output buffer by whoever emits them, and one flusher
//! task per engine writes every connection with pending bytes in turn.
//!
//! The general path gives each socket a queue and a writer task. Emitting one event to 10 000
//! sockets then wakes 10 000 tasks, each of which turns its packet into a `String`, frames it
//! in tungstenite and writes it; every socket also holds the queue's first block and the
//! writer's future. Here an emit appends a few hundred bytes under the connection's lock, and
//! the flusher's pass over the connections that have something to send writes all of a
//! connection's pending frames in one `write`, so when the server falls behind, frames to the
//! same client coalesce instead of queueing behind one another.
//!
//! Reads still go through tungstenite: [`ConnIo`] is the stream it reads from, and its
//! writes (the replies tungstenite sends on its own, pong and close) join the same output
//! buffer so the order of frames is kept.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use engineioxide_core::{Packet, PacketBuf, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::queue::TrySendError;

/// How many connections the flusher writes before it lets other tasks run.
const FLUSH_BATCH: usize = 64;
/// How long a closing connection may take to write what it still holds.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Output buffers larger than this are released once written, rather than kept for reuse.
const KEEP_BUFFER: usize = 4096;

/// One engine's connections with bytes to write, and the task that writes them.
#[derive(Default)]
pub(crate) struct Flusher {
    pending: Mutex<Vec<Arc<Conn>>>,
    wake: Notify,
    started: AtomicBool,
}

impl Flusher {
    /// Starts the flusher task on the current runtime, once.
    pub(crate) fn ensure_started(self: &Arc<Self>) {
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().run());
        }
    }

    fn schedule(&self, conn: Arc<Conn>) {
        let was_empty = {
            let mut pending = lock(&self.pending);
            pending.push(conn);
            pending.len() == 1
        };
        if was_empty {
            self.wake.notify_one();
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            loop {
                let batch = std::mem::take(&mut *lock(&self.pending));
                if batch.is_empty() {
                    break;
                }
                for (i, conn) in batch.into_iter().enumerate() {
                    conn.flush();
                    if i % FLUSH_BATCH == FLUSH_BATCH - 1 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }
}

/// Where a connection's output stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// Nothing is waiting to be written.
    Idle,
    /// In the flusher's list.
    Scheduled,
    /// The kernel's send buffer is full; a task waits for it to drain.
    WaitingWritable,
}

struct Out {
    buf: Vec<u8>,
    /// Packets in `buf`, for the `max_buffer_size` limit.
    packets: usize,
    reserved: usize,
    flush: Flush,
    /// Set when the session ends or a write fails; nothing more is accepted.
    closed: bool,
}

/// A WebSocket connection over TCP whose frames are written without a task of its own.
pub(crate) struct Conn {
    tcp: TcpStream,
    out: Mutex<Out>,
    flusher: Arc<Flusher>,
    capacity: usize,
    /// Engine.IO v3 (a session upgraded from polling by socket.io-client 2.x): binary
    /// frames start with the packet type.
    v3: bool,
    /// Wakes the session's reader when the connection is closed by a failed write.
    closed: Notify,
}

impl Conn {
    /// Wraps an upgraded TCP stream; `capacity` is the most packets that may wait unwritten.
    pub(crate) fn new(
        tcp: TcpStream,
        flusher: Arc<Flusher>,
        capacity: usize,
        protocol: ProtocolVersion,
    ) -> Arc<Self> {
        flusher.ensure_started();
        Arc::new(Conn {
            tcp,
            out: Mutex::new(Out {
                buf: Vec::new(),
                packets: 0,
                reserved: 0,
                flush: Flush::Idle,
                closed: false,
            }),
            flusher,
            capacity,
            v3: protocol == ProtocolVersion::V3,
            closed: Notify::new(),
        })
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        lock(&self.out)
    }

    /// Reserves room for one packet, as [`crate::socket::Socket::reserve`] promises.
    pub(crate) fn try_reserve(&self) -> Result<(), TrySendError<()>> {
        let mut out = self.out();
        if out.closed {
            return Err(TrySendError::Closed(()));
        }
        if out.packets + out.reserved >= self.capacity {
            return Err(TrySendError::Full(()));
        }
        out.reserved += 1;
        Ok(())
    }

    /// Gives back a reservation that was not used.
    pub(crate) fn release(&self) {
        self.out().reserved -= 1;
    }

    /// Frames and queues packets that are sent together, in a place reserved beforehand
    /// (`reserved`) or if there is room.
    // The error hands the packets back, as tokio's `try_send` does.
    #[allow(clippy::result_large_err)]
    pub(crate) fn send(
        self: &Arc<Self>,
        packets: PacketBuf,
        reserved: bool,
    ) -> Result<(), TrySendError<PacketBuf>> {
        let mut out = self.out();
        if reserved {
            out.reserved -= 1;
        }
        if out.closed {
            return Err(TrySendError::Closed(packets));
        }
        if !reserved && out.packets + out.reserved >= self.capacity {
            return Err(TrySendError::Full(packets));
        }
        for packet in packets {
            encode(packet, self.v3, &mut out.buf);
        }
        out.packets += 1;
        self.schedule(out);
        Ok(())
    }

    /// Frames and queues packets that were already accepted elsewhere (by the session's
    /// queue before it moved to this connection), whatever room is left: refusing them now
    /// would lose packets the sender was told were sent.
    pub(crate) fn send_accepted(self: &Arc<Self>, packets: PacketBuf) {
        let mut out = self.out();
        if out.closed {
            return;
        }
        for packet in packets {
            encode(packet, self.v3, &mut out.buf);
        }
        out.packets += 1;
        self.schedule(out);
    }

    /// Queues bytes that are already framed (tungstenite's own replies).
    fn send_raw(self: &Arc<Self>, bytes: &[u8]) -> io::Result<()> {
        let mut out = self.out();
        if out.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        out.buf.extend_from_slice(bytes);
        self.schedule(out);
        Ok(())
    }

    fn schedule(self: &Arc<Self>, mut out: MutexGuard<'_, Out>) {
        if out.flush == Flush::Idle {
            out.flush = Flush::Scheduled;
            drop(out);
            self.flusher.schedule(self.clone());
        }
    }

    /// Writes what is pending; if the kernel takes only part, waits for room in a task.
    fn flush(self: Arc<Self>) {
        let mut out = self.out();
        match self.write_out(&mut out) {
            Ok(true) => out.flush = Flush::Idle,
            Ok(false) => {
                out.flush = Flush::WaitingWritable;
                drop(out);
                tokio::spawn(self.flush_when_writable());
            }
            Err(_) => {
                out.flush = Flush::Idle;
                drop(out);
                self.fail();
            }
        }
    }

    async fn flush_when_writable(self: Arc<Self>) {
        loop {
            if self.tcp.writable().await.is_err() {
                self.out().flush = Flush::Idle;
                self.fail();
                return;
            }
            let mut out = self.out();
            match self.write_out(&mut out) {
                Ok(true) => {
                    out.flush = Flush::Idle;
                    return;
                }
                Ok(false) => continue,
                Err(_) => {
                    out.flush = Flush::Idle;
                    drop(out);
                    self.fail();
                    return;
                }
            }
        }
    }

    /// Writes as much of the buffer as the kernel takes; `Ok(true)` once all of it is written.
    fn write_out(&self, out: &mut Out) -> io::Result<bool> {
        let mut written = 0;
        let result = loop {
            if written == out.buf.len() {
                break Ok(true);
            }
            match self.tcp.try_write(&out.buf[written..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(true) => {
                if out.buf.capacity() > KEEP_BUFFER {
                    out.buf = Vec::new();
                } else {
                    out.buf.clear();
                }
                out.packets = 0;
            }
            Ok(false) => {
                out.buf.drain(..written);
            }
            Err(_) => {
                out.buf = Vec::new();
                out.packets = 0;
            }
        }
        result
    }

    /// A write failed: the peer is gone. Refuse further packets and wake the reader.
    fn fail(&self) {
        self.out().closed = true;
        self.closed.notify_waiters();
        self.closed.notify_one();
    }

    /// Resolves when a write has failed.
    pub(crate) async fn failed(&self) {
        self.closed.notified().await
    }

    /// Ends the connection: sends a WebSocket close frame unless the peer's close was
    /// already answered, writes what is left (for at most [`CLOSE_FLUSH_TIMEOUT`]) and shuts
    /// the TCP stream down.
    pub(crate) async fn finish(&self, send_close: bool) {
        {
            let mut out = self.out();
            if !out.closed && send_close {
                out.buf.extend_from_slice(&[0x88, 0x00]);
            }
            out.closed = true;
        }
        let drained = async {
            loop {
                {
                    let mut out = self.out();
                    match self.write_out(&mut out) {
                        Ok(false) => {}
                        Ok(true) | Err(_) => return,
                    }
                }
                if self.tcp.writable().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, drained)
            .await
            .ok();
        socket2::SockRef::from(&self.tcp)
            .shutdown(std::net::Shutdown::Both)
            .ok();
    }
}

/// Appends one engine.io packet as one WebSocket frame (server frames are not masked).
fn encode(packet: Packet, v3: bool, buf: &mut Vec<u8>) {
    match packet {
        Packet::Noop => {}
        Packet::Message(msg) => {
            header(buf, OPCODE_TEXT, msg.len() + 1);
            buf.push(b'4');
            buf.extend_from_slice(msg.as_bytes());
        }
        Packet::Binary(bin) | Packet::BinaryV3(bin) if v3 => {
            // Engine.IO v3 puts the packet type (4, message) first in a binary frame.
            header(buf, OPCODE_BINARY, bin.len() + 1);
            buf.push(0x04);
            buf.extend_from_slice(&bin);
        }
        Packet::Binary(bin) | Packet::BinaryV3(bin) => {
            header(buf, OPCODE_BINARY, bin.len());
            buf.extend_from_slice(&bin);
        }
        other => {
            let text = String::from(other);
            header(buf, OPCODE_TEXT, text.len());
            buf.extend_from_slice(text.as_bytes());
        }
    }
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_BINARY: u8 = 0x2;

fn header(buf: &mut Vec<u8>, opcode: u8, len: usize) {
    buf.push(0x80 | opcode);
    if len < 126 {
        buf.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        buf.push(126);
        buf.extend_from_slice(&len.to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code that can panic runs under these locks except allocation failure, after which
    // the buffers are still consistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The byte stream tungstenite reads frames from: the bytes hyper read ahead during the
/// upgrade, then the TCP stream. Its writes join the connection's output buffer.
pub(crate) struct ConnIo {
    conn: Arc<Conn>,
    read_ahead: VecDeque<Bytes>,
}

impl ConnIo {
    /// Reads `read_ahead` first, then `conn`.
    pub(crate) fn new(conn: Arc<Conn>, read_ahead: Bytes) -> Self {
        let read_ahead = if read_ahead.is_empty() {
            VecDeque::new()
        } else {
            VecDeque::from([read_ahead])
        };
        ConnIo { conn, read_ahead }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(ahead) = self.read_ahead.front_mut() {
            let n = ahead.len().min(buf.remaining());
            buf.put_slice(&ahead[..n]);
            ahead.advance(n);
            if ahead.is_empty() {
                self.read_ahead.pop_front();
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            ready!(self.conn.tcp.poll_read_ready(cx))?;
            match self.conn.tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.conn.send_raw(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_engine_io_type_and_the_right_length_form() {
        let mut buf = Vec::new();
        encode(Packet::Message("hi".into()), false, &mut buf);
        assert_eq!(buf, [0x81, 3, b'4', b'h', b'i']);

        let mut buf = Vec::new();
        let long = "x".repeat(300);
        encode(Packet::Message(long.clone().into()), false, &mut buf);
        assert_eq!(&buf[..4], &[0x81, 126, 1, 45]);
        assert_eq!(buf.len(), 4 + 301);

        let mut buf = Vec::new();
        let huge = "y".repeat(70_000);
        encode(Packet::Message(huge.into()), false, &mut buf);
        assert_eq!(&buf[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(buf[2..10].try_into().unwrap()), 70_001);

        let mut buf = Vec::new();
        encode(Packet::Ping, false, &mut buf);
        encode(Packet::Noop, false, &mut buf);
        encode(Packet::Binary(Bytes::from_static(&[1, 2])), false, &mut buf);
        assert_eq!(buf, [0x81, 1, b'2', 0x82, 2, 1, 2]);

        let mut buf = Vec::new();
        encode(
            Packet::BinaryV3(Bytes::from_static(&[1, 2])),
            true,
            &mut buf,
        );
        encode(Packet::Binary(Bytes::from_static(&[3])), true, &mut buf);
        assert_eq!(
            buf,
            [0x82, 3, 4, 1, 2, 0x82, 2, 4, 3],
            "v3 binary starts with 4"
        );
    }
}

/// The flusher over real loopback TCP connections: a peer that does not read until the
/// kernel's buffers are full, a slow reader, and the end of a session with frames pending.
#[cfg(test)]
mod flusher_tests {
    use futures_util::StreamExt;
    use smallvec::smallvec;
    use socket2::SockRef;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    /// `max_buffer_size` of the connections under test.
    const CAPACITY: usize = 16;
    /// Payload of each test packet: a few of them fill small kernel buffers.
    const PAD: usize = 4096;
    /// How long a test waits for something that should happen at once.
    const WAIT: Duration = Duration::from_secs(10);

    /// A server-side [`Conn`] and the client end of a real loopback connection, with small
    /// kernel buffers so that backpressure sets in after a few dozen packets.
    async fn pair(flusher: &Arc<Flusher>) -> (Arc<Conn>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        SockRef::from(&server)
            .set_send_buffer_size(16 * 1024)
            .unwrap();
        SockRef::from(&client)
            .set_recv_buffer_size(16 * 1024)
            .unwrap();
        (
            Conn::new(server, flusher.clone(), CAPACITY, ProtocolVersion::V4),
            client,
        )
    }

    /// Packet number `seq`: `4{seq}:` and padding, so the reader can check order and loss.
    fn packet(seq: usize) -> PacketBuf {
        smallvec![Packet::Message(format!("{seq}:{}", "x".repeat(PAD)).into())]
    }

    fn state(conn: &Conn) -> Flush {
        conn.out().flush
    }

    /// Waits until the flusher has dealt with `conn`: written out, or waiting for room.
    async fn settle(conn: &Conn) {
        let start = tokio::time::Instant::now();
        while state(conn) == Flush::Scheduled {
            assert!(start.elapsed() < WAIT, "the flusher never ran");
            tokio::task::yield_now().await;
        }
    }

    /// Sends packets 0, 1, … one at a time, each written before the next, until the kernel
    /// refuses more because the client does not read. Returns how many were sent; the last
    /// one is (at least partly) still in the connection's buffer.
    async fn fill_kernel(conn: &Arc<Conn>) -> usize {
        let mut sent = 0;
        loop {
            conn.send(packet(sent), false)
                .expect("room while the kernel takes every packet");
            sent += 1;
            settle(conn).await;
            if state(conn) == Flush::WaitingWritable {
                return sent;
            }
            assert!(sent < 10_000, "the kernel buffers never filled");
        }
    }

    async fn client(tcp: TcpStream) -> WebSocketStream<TcpStream> {
        WebSocketStream::from_raw_socket(tcp, Role::Client, None).await
    }

    /// The sequence number of the next message, which must be a packet made by [`packet`].
    async fn next_seq(ws: &mut WebSocketStream<TcpStream>) -> usize {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the next frame arrives")
            .expect("the stream is open")
            .expect("a well-formed frame");
        let text = msg.to_text().expect("a text frame");
        let (seq, pad) = text
            .strip_prefix('4')
            .and_then(|t| t.split_once(':'))
            .unwrap_or_else(|| panic!("not a test packet: {:.40}", text));
        assert_eq!(pad.len(), PAD, "packet {seq} arrived cut");
        seq.parse().unwrap()
    }

    #[tokio::test]
    async fn under_backpressure_everything_accepted_arrives_in_order_and_the_rest_is_refused() {
        let flusher = Arc::new(Flusher::default());
        let (conn, tcp) = pair(&flusher).await;

        let first_waiting = fill_kernel(&conn).await - 1;
        // No await from here on: the task waiting for room cannot run, so what is accepted
        // is exactly what waits in the connection's buffer.
        let mut sent = first_waiting + 1;
        let refused = loop {
            match conn.send(packet(sent), false) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(refused, TrySendError::Full(_)), "{refused:?}");
        assert_eq!(
            sent - first_waiting,
            CAPACITY,
            "max_buffer_size packets may wait unwritten, not more and not fewer"
        );
        assert!(
            matches!(conn.try_reserve(), Err(TrySendError::Full(()))),
            "a reservation needs room too"
        );

        // The client starts reading: every accepted packet arrives once, in order, and the
        // refused one never does.
        let mut ws = client(tcp).await;
        for expected in 0..sent {
            assert_eq!(next_seq(&mut ws).await, expected);
        }
        // Drained, the connection takes packets again.
        let start = tokio::time::Instant::now();
        while state(&conn) != Flush::Idle {
            assert!(start.elapsed() < WAIT, "the connection never drained");
            tokio::task::yield_now().await;
        }
        conn.send(packet(sent), false).expect("room once drained");
        assert_eq!(next_seq(&mut ws).await, sent);
    }

    #[tokio::test]
    async fn a_slow_reader_gets_everything_in_order_and_holds_up_no_other_connection() {
        let flusher = Arc::new(Flusher::default());
        let (slow, slow_tcp) = pair(&flusher).await;
        let (fast, fast_tcp) = pair(&flusher).await;

        let mut next_send = fill_kernel(&slow).await;

        // The flusher serves the other connection while the slow one cannot take more.
        let mut fast_ws = client(fast_tcp).await;
        for seq in 0..50 {
            fast.send(packet(seq), false).unwrap();
            assert_eq!(next_seq(&mut fast_ws).await, seq);
        }

        // The slow reader takes one frame at a time while the sender keeps offering more,
        // retrying what was refused: nothing is lost or reordered.
        let total = next_send + 200;
        let mut refusals = 0;
        let mut slow_ws = client(slow_tcp).await;
        for expected in 0..total {
            while next_send < total {
                match slow.send(packet(next_send), false) {
                    Ok(()) => next_send += 1,
                    Err(TrySendError::Full(_)) => {
                        refusals += 1;
                        break;
                    }
                    Err(e) => panic!("the connection closed: {e:?}"),
                }
            }
            assert_eq!(next_seq(&mut slow_ws).await, expected);
        }
        assert!(
            refusals > 0,
            "the reader was never slow enough to refuse a packet"
        );
    }

    #[tokio::test]
    async fn finishing_with_frames_pending_writes_them_then_a_close_frame() {
        let flusher = Arc::new(Flusher::default());
        let (conn, tcp) = pair(&flusher).await;

        let mut sent = fill_kernel(&conn).await;
        while conn.send(packet(sent), false).is_ok() {
            sent += 1;
        }

        // The client reads everything up to the close frame and then the end of the stream.
        let reader = tokio::spawn(async move {
            let mut ws = client(tcp).await;
            for expected in 0..sent {
                assert_eq!(next_seq(&mut ws).await, expected);
            }
            let close = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
            assert!(matches!(close, Some(Ok(Message::Close(None)))), "{close:?}");
            let end = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
            assert!(end.is_none(), "{end:?}");
        });
        tokio::time::timeout(WAIT, conn.finish(true))
            .await
            .expect("finish returns once everything is written");
        assert!(matches!(
            conn.send(packet(sent), false),
            Err(TrySendError::Closed(_))
        ));
        assert!(matches!(conn.try_reserve(), Err(TrySendError::Closed(()))));
        reader.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn finishing_with_a_peer_that_never_reads_gives_up_after_the_timeout() {
        let flusher = Arc::new(Flusher::default());
        let (conn, mut tcp) = pair(&flusher).await;
        let mut sent = fill_kernel(&conn).await;
        while conn.send(packet(sent), false).is_ok() {
            sent += 1;
        }

        let start = tokio::time::Instant::now();
        conn.finish(true).await;
        assert!(start.elapsed() >= CLOSE_FLUSH_TIMEOUT);

        // The socket was shut down: the client reads what the kernel held, then the end.
        let mut received = Vec::new();
        tcp.read_to_end(&mut received).await.unwrap();
        let all = sent * (PAD + 10);
        assert!(
            received.len() < all,
            "the pending frames cannot all have been written"
        );
    }
}
