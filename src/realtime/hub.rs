//! The hub: takes committed events from the service (in whatever order their transactions
//! finished publishing), puts each workspace's events back in `seq` order, and fans them out:
//! to the workspace's Socket.IO room (one argument), to sockets that asked for sequence numbers
//! (two arguments), and to SSE subscribers. A gap that does not fill itself quickly (a
//! publisher that stalled or died after commit) is filled from the event log.
//!
//! A single task does all fan-out, so "attach this socket after replaying up to the live
//! position" runs between two deliveries and cannot miss or repeat an event.
//!
//! With several processes ([`crate::cluster`]), events committed elsewhere arrive as news and
//! take the same path as local ones; a periodic look at the log's heads catches up whatever
//! news was lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socketioxide::extract::SocketRef;
use socketioxide::{BroadcastError, SendError, SocketIo};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use serde_json::value::RawValue;

use super::frame::Frame;
use crate::cluster::wire::Body;
use crate::cluster::{Cluster, HEAD_CHECK, Inbound};
use crate::config::EventStyle;
use crate::domain::error::{Error, Result};
use crate::domain::event::TaskEvent;
use crate::domain::service::EventSink;
use crate::jobs::{JobRecord, JobSink};
use crate::store::Store;
use crate::telemetry::metric;

/// How long an out-of-order event waits for its predecessor before the log is asked.
const GAP_WAIT: Duration = Duration::from_millis(250);
/// Most events fetched from the log per gap fill.
const GAP_FILL_BATCH: i64 = 1000;
/// How long a lagging socket may take to drain before the disconnect is left to the ping
/// timeout.
const DISCONNECT_PATIENCE: Duration = Duration::from_secs(60);
/// How often overload (sockets missing events) is logged.
const MISSED_WARNING_INTERVAL: Duration = Duration::from_secs(1);
/// Frames buffered per workspace for SSE subscribers; one that falls further behind catches
/// up from the log instead.
const SSE_CHANNEL: usize = 1024;

/// The Socket.IO event carrying a job's state and progress.
pub const JOB_PROGRESS: &str = "job_progress";

/// The room of every plain socket of a workspace (events with one argument).
pub fn workspace_room(workspace: &str) -> String {
    format!("ws:{workspace}")
}

/// The room of a task, joined with `join-task`; it carries presence updates.
pub fn task_room(workspace: &str, task: uuid::Uuid) -> String {
    format!("task:{workspace}:{task}")
}

/// The room of sockets that asked for sequence numbers (events with two arguments).
pub fn seq_room(workspace: &str) -> String {
    format!("seq:{workspace}")
}

enum Msg {
    Event(Box<TaskEvent>),
    Job {
        workspace: String,
        payload: Box<RawValue>,
    },
    Attach {
        socket: SocketRef,
        workspace: String,
        after: i64,
        done: oneshot::Sender<Result<usize>>,
    },
}

type SseChannels = Arc<Mutex<HashMap<String, broadcast::Sender<Arc<Frame>>>>>;

/// Hands committed events to the fan-out task without ever blocking the caller, and lets
/// transports subscribe.
pub struct Hub {
    tx: mpsc::UnboundedSender<Msg>,
    sse: SseChannels,
    styles: Arc<[EventStyle]>,
    /// Events handed over and not yet fanned out, so producers of many events (jobs) can wait.
    queued: Arc<AtomicUsize>,
    /// The other processes, when there are any.
    cluster: Option<Arc<Cluster>>,
}

impl EventSink for Hub {
    fn backlog(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn publish(&self, event: TaskEvent) {
        if let Some(cluster) = &self.cluster {
            cluster.publish_event(&event);
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Event(Box::new(event))).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            // Only after shutdown; the event is in the log and replay will deliver it.
            metrics::counter!(metric::EVENTS_DROPPED).increment(1);
        }
    }
}

impl JobSink for Hub {
    fn job_changed(&self, job: &JobRecord) {
        let payload = match serde_json::value::to_raw_value(job) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, job_id = %job.id, "could not render a job update");
                return;
            }
        };
        if let Some(cluster) = &self.cluster {
            cluster.publish_job(&job.workspace, &payload);
        }
        // Through the fan-out task, so a job's updates reach sockets in the order they happened.
        let _ = self.tx.send(Msg::Job {
            workspace: job.workspace.clone(),
            payload,
        });
    }
}

impl Hub {
    /// Starts the fan-out task on `runtime` (the one sockets live on, so enqueueing an event for
    /// thousands of them does not hold up requests). Workspace positions start at the log's current heads so the
    /// first live event of a workspace is never mistaken for a gap. With a `cluster`, it also
    /// takes the other processes' news and watches the log's heads.
    pub async fn start(
        io: SocketIo,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
        runtime: &tokio::runtime::Handle,
        styles: &[EventStyle],
        cluster: Option<Arc<Cluster>>,
    ) -> Result<Arc<Hub>> {
        let styles: Arc<[EventStyle]> = if styles.is_empty() {
            Arc::new([EventStyle::Default])
        } else {
            styles.into()
        };
        let heads = store.event_heads().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let sse = SseChannels::default();
        let queued = Arc::new(AtomicUsize::new(0));
        let news = cluster.as_ref().map(|cluster| {
            let (inbox, news) = mpsc::unbounded_channel();
            tracker.spawn_on(cluster.clone().subscribe(inbox, shutdown.clone()), runtime);
            news
        });
        let fanout = Fanout {
            queued: queued.clone(),
            io,
            store,
            sse: sse.clone(),
            next: heads.into_iter().map(|(ws, seq)| (ws, seq + 1)).collect(),
            pending: HashMap::new(),
            parked: HashMap::new(),
            styles: styles.clone(),
            missed_since_warning: 0,
            last_warning: Instant::now() - MISSED_WARNING_INTERVAL,
        };
        tracker.spawn_on(fanout.run(rx, news, shutdown), runtime);
        Ok(Arc::new(Hub {
            tx,
            sse,
            styles,
            queued,
            cluster,
        }))
    }

    /// The Socket.IO event styles every frame is rendered in.
    pub fn styles(&self) -> &[EventStyle] {
        &self.styles
    }

    /// Frames of `workspace` delivered from now on, for an SSE stream.
    pub fn subscribe(&self, workspace: &str) -> broadcast::Receiver<Arc<Frame>> {
        let mut channels = self
            .sse
            .lock()
            .expect("SSE channel map lock is never poisoned");
        channels
            .entry(workspace.to_owned())
            .or_insert_with(|| broadcast::channel(SSE_CHANNEL).0)
            .subscribe()
    }

    /// Sends `socket` every event of `workspace` after `after` up to the live position, then
    /// puts it in the sequence room so live events follow without a gap or a repeat. Returns
    /// how many events were sent. Call after replaying the bulk from the log, so this step is
    /// short.
    pub async fn attach(&self, socket: SocketRef, workspace: &str, after: i64) -> Result<usize> {
        let (done, wait) = oneshot::channel();
        let msg = Msg::Attach {
            socket,
            workspace: workspace.to_owned(),
            after,
            done,
        };
        self.tx
            .send(msg)
            .map_err(|_| Error::Unavailable("shutting down".into()))?;
        wait.await
            .map_err(|_| Error::Unavailable("shutting down".into()))?
    }
}

struct Fanout {
    queued: Arc<AtomicUsize>,
    io: SocketIo,
    store: Arc<dyn Store>,
    sse: SseChannels,
    /// Next `seq` to deliver, per workspace.
    next: HashMap<String, i64>,
    /// Events that arrived ahead of their turn, and since when the oldest has waited.
    pending: HashMap<String, (Instant, BTreeMap<i64, TaskEvent>)>,
    /// Sockets whose replay read the log further than delivery has reached: they join live
    /// delivery once the hub has delivered up to their position, so nothing arrives twice.
    parked: HashMap<String, Vec<Parked>>,
    styles: Arc<[EventStyle]>,
    /// Socket deliveries missed since the last overload warning, and when that was.
    missed_since_warning: usize,
    last_warning: Instant,
}

struct Parked {
    socket: SocketRef,
    after: i64,
    done: oneshot::Sender<Result<usize>>,
}

impl Fanout {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut news: Option<mpsc::UnboundedReceiver<Inbound>>,
        shutdown: CancellationToken,
    ) {
        let mut gap_check = tokio::time::interval(GAP_WAIT);
        gap_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut head_check = tokio::time::interval(HEAD_CHECK);
        head_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let clustered = news.is_some();
        loop {
            tokio::select! {
                biased;
                msg = rx.recv() => match msg {
                    Some(msg) => {
                        self.handle(msg).await;
                        // Sockets' writers share this runtime: let them send what was just
                        // queued before the next event, or under overload this loop would
                        // fill every socket's buffer while none of them gets to write.
                        tokio::task::yield_now().await;
                    }
                    None => break,
                },
                _ = gap_check.tick(), if !self.pending.is_empty() => self.fill_gaps().await,
                inbound = recv_news(&mut news) => match inbound {
                    Some(inbound) => {
                        self.take_news(inbound).await;
                        tokio::task::yield_now().await;
                    }
                    None => news = None,
                },
                _ = head_check.tick(), if clustered => self.catch_up_with_log().await,
                () = shutdown.cancelled() => break,
            }
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Event(event) => {
                self.accept(*event).await;
                self.queued.fetch_sub(1, Ordering::Relaxed);
            }
            Msg::Job { workspace, payload } => self.announce_job(&workspace, &payload).await,
            Msg::Attach {
                socket,
                workspace,
                after,
                done,
            } => self.attach(socket, &workspace, after, done).await,
        }
    }

    /// `job_progress` with the job JSON to every socket of the job's workspace (both rooms:
    /// plain and sequence-numbered sockets), serialised once.
    async fn announce_job(&self, workspace: &str, payload: &RawValue) {
        let Some(root) = self.root() else { return };
        if let Err(err) = root
            .to(workspace_room(workspace))
            .to(seq_room(workspace))
            .emit(JOB_PROGRESS, payload)
            .await
        {
            metrics::counter!(metric::EMIT_FAILURES, "event" => JOB_PROGRESS).increment(1);
            tracing::debug!(error = %err, "some sockets did not get a job update");
        }
    }

    /// Another process's news: events join the local ones (in `seq` order, once), job and
    /// presence updates go to this process's sockets.
    async fn take_news(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::News(Body::Event(event)) => self.accept((*event).into()).await,
            Inbound::News(Body::Job { workspace, job }) => {
                self.announce_job(&workspace, &job).await
            }
            Inbound::News(Body::Presence {
                workspace,
                task,
                users,
            }) => {
                let Some(root) = self.root() else { return };
                if let Err(err) = root
                    .to(task_room(&workspace, task))
                    .emit(super::presence::PRESENCE_EVENT, &users)
                    .await
                {
                    tracing::debug!(error = %err, "some sockets did not get a presence update");
                }
            }
            // News may have been lost while unsubscribed: look at the log now.
            Inbound::Resubscribed => self.catch_up_with_log().await,
        }
    }

    /// Delivers, from the log, every event committed (by any process) beyond this hub's
    /// position: what Pub/Sub lost, or what is still on its way.
    async fn catch_up_with_log(&mut self) {
        let heads = match self.store.event_heads().await {
            Ok(heads) => heads,
            Err(err) => {
                tracing::debug!(error = %err, "cannot read the log's heads");
                return;
            }
        };
        for (workspace, head) in heads {
            let next = self.next.get(&workspace).copied().unwrap_or(1);
            if head >= next {
                let delivered = self.fill_from_log(&workspace).await;
                metrics::counter!(metric::CLUSTER_CAUGHT_UP).increment(delivered as u64);
            }
        }
    }

    async fn accept(&mut self, event: TaskEvent) {
        let next = self.next.entry(event.workspace.clone()).or_insert(1);
        if event.seq < *next {
            return; // already delivered (by a gap fill)
        }
        if event.seq > *next {
            let (_, waiting) = self
                .pending
                .entry(event.workspace.clone())
                .or_insert_with(|| (Instant::now(), BTreeMap::new()));
            waiting.insert(event.seq, event);
            return;
        }
        let workspace = event.workspace.clone();
        self.deliver(event).await;
        self.drain_ready(&workspace).await;
    }

    /// Delivers buffered events that are now in turn.
    async fn drain_ready(&mut self, workspace: &str) {
        loop {
            let next = self.next.get(workspace).copied().unwrap_or(1);
            let Some((_, waiting)) = self.pending.get_mut(workspace) else {
                return;
            };
            let event = waiting.remove(&next);
            if waiting.is_empty() {
                self.pending.remove(workspace);
            }
            match event {
                Some(event) => self.deliver(event).await,
                None => return,
            }
        }
    }

    async fn fill_gaps(&mut self) {
        let overdue: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (since, _))| since.elapsed() >= GAP_WAIT)
            .map(|(ws, _)| ws.clone())
            .collect();
        for workspace in overdue {
            metrics::counter!(metric::EVENT_GAPS_FILLED).increment(1);
            self.fill_from_log(&workspace).await;
            if let Some((since, _)) = self.pending.get_mut(&workspace) {
                *since = Instant::now();
            }
        }
    }

    /// Delivers the workspace's logged events from its position on, then whatever was
    /// waiting for them; returns how many came from the log.
    async fn fill_from_log(&mut self, workspace: &str) -> usize {
        let next = self.next.get(workspace).copied().unwrap_or(1);
        let events = match self
            .store
            .events_after(workspace, next - 1, GAP_FILL_BATCH)
            .await
        {
            Ok(events) => events,
            Err(err) => {
                tracing::warn!(error = %err, %workspace, "could not fill an event gap from the log");
                return 0;
            }
        };
        if let Some(first) = events.first()
            && first.seq > next
        {
            // The log is gapless, so what is missing was pruned before this process saw it:
            // nothing can deliver it any more. Sockets with sequence numbers see the jump and
            // resync.
            tracing::warn!(%workspace, from = next, to = first.seq - 1,
                "events were pruned from the log before they were delivered here");
            self.next.insert(workspace.to_owned(), first.seq);
        }
        let mut delivered = 0;
        for event in events {
            if event.seq != self.next.get(workspace).copied().unwrap_or(1) {
                break;
            }
            if let Some((_, waiting)) = self.pending.get_mut(workspace) {
                waiting.remove(&event.seq);
                if waiting.is_empty() {
                    self.pending.remove(workspace);
                }
            }
            self.deliver(event).await;
            delivered += 1;
        }
        self.drain_ready(workspace).await;
        delivered
    }

    /// The default namespace, or None once shutdown has closed Socket.IO (socketioxide's
    /// `SocketIo::to` panics then, and a change may still commit while the process stops).
    fn root(&self) -> Option<socketioxide::operators::BroadcastOperators> {
        self.io.of("/")
    }

    async fn deliver(&mut self, event: TaskEvent) {
        self.next.insert(event.workspace.clone(), event.seq + 1);
        let frame = match Frame::render(&event, &self.styles) {
            Ok(frame) => Arc::new(frame),
            Err(err) => {
                tracing::error!(error = ?err, seq = event.seq, "could not render an event");
                return;
            }
        };
        let name = frame.kind.as_str();
        // Plain sockets: one broadcast per event style, serialised once. A socket whose buffer
        // is full misses the event (at-most-once, as with any socket.io server); it is counted.
        // After shutdown closed Socket.IO there are no sockets left, but SSE streams may be.
        if let Some(root) = self.root() {
            for event in &frame.socket_events {
                if let Err(err) = root
                    .clone()
                    .to(workspace_room(&frame.workspace))
                    .emit(event.name, &event.payload)
                    .await
                {
                    self.missed(&err, event.name, frame.seq);
                }
            }
            // Sockets that asked for sequence numbers: sent one by one so a stuck socket is
            // known and disconnected; it reconnects with `since` and catches up from the log.
            for socket in root.to(seq_room(&frame.workspace)).sockets() {
                if emit_with_meta(&socket, &frame).is_err() {
                    metrics::counter!(metric::SLOW_CONSUMERS, "transport" => "socket").increment(1);
                    tracing::info!(sid = %socket.id, seq = frame.seq, "disconnecting a socket that fell behind");
                    drop_lagging(socket, &frame.workspace);
                }
            }
        }
        metrics::counter!(metric::EVENTS_EMITTED, "event" => name).increment(1);
        self.unpark(&frame.workspace, frame.seq);
        let mut channels = self
            .sse
            .lock()
            .expect("SSE channel map lock is never poisoned");
        if let Some(tx) = channels.get(&frame.workspace) {
            if tx.receiver_count() == 0 {
                channels.remove(&frame.workspace);
            } else {
                let _ = tx.send(frame);
            }
        }
    }

    /// Counts the sockets a broadcast missed. Under overload every event misses thousands of
    /// full buffers, so the error (which lists each socket) is summarised, at most once a second.
    fn missed(&mut self, err: &BroadcastError, event: &'static str, seq: i64) {
        let sockets = match err {
            BroadcastError::Socket(errors) => errors.len(),
            _ => 0,
        };
        metrics::counter!(metric::EMIT_FAILURES, "event" => event).increment(1);
        metrics::counter!(metric::SLOW_CONSUMERS, "transport" => "socket")
            .increment(sockets as u64);
        self.missed_since_warning += sockets;
        if self.last_warning.elapsed() >= MISSED_WARNING_INTERVAL {
            let missed = std::mem::take(&mut self.missed_since_warning);
            self.last_warning = Instant::now();
            if sockets == 0 {
                tracing::warn!(error = %err, event, seq, "a broadcast failed");
            } else {
                tracing::warn!(
                    missed,
                    event,
                    seq,
                    "sockets with full buffers missed events (slow consumers; SOCKET_BUFFER)"
                );
            }
        }
    }

    async fn attach(
        &mut self,
        socket: SocketRef,
        workspace: &str,
        after: i64,
        done: oneshot::Sender<Result<usize>>,
    ) {
        let head = self.next.get(workspace).copied().unwrap_or(1) - 1;
        if after > head {
            self.parked
                .entry(workspace.to_owned())
                .or_default()
                .push(Parked {
                    socket,
                    after,
                    done,
                });
            return;
        }
        let _ = done.send(self.replay_and_join(socket, workspace, after, head).await);
    }

    /// Sends `(after, head]` from the log to the socket, then adds it to live delivery.
    async fn replay_and_join(
        &mut self,
        socket: SocketRef,
        workspace: &str,
        after: i64,
        head: i64,
    ) -> Result<usize> {
        let mut sent = 0;
        if after < head {
            for event in self
                .store
                .events_after(workspace, after, head - after)
                .await?
            {
                let frame = Frame::render(&event, &self.styles)?;
                if emit_with_meta(&socket, &frame).is_err() {
                    drop_lagging(socket, workspace);
                    return Err(Error::Unavailable(
                        "the socket fell behind during replay".into(),
                    ));
                }
                sent += 1;
            }
        }
        socket.join(seq_room(workspace));
        Ok(sent)
    }

    /// Adds parked sockets whose position delivery has now reached.
    fn unpark(&mut self, workspace: &str, delivered: i64) {
        let Some(parked) = self.parked.get_mut(workspace) else {
            return;
        };
        let (ready, waiting): (Vec<Parked>, Vec<Parked>) =
            parked.drain(..).partition(|p| p.after <= delivered);
        *parked = waiting;
        if parked.is_empty() {
            self.parked.remove(workspace);
        }
        for p in ready {
            p.socket.join(seq_room(workspace));
            let _ = p.done.send(Ok(0));
        }
    }
}

/// The next message from other processes, or never when there are none.
async fn recv_news(news: &mut Option<mpsc::UnboundedReceiver<Inbound>>) -> Option<Inbound> {
    match news {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends every style's event of `frame` with the `{seq, type, at}` second argument.
pub fn emit_with_meta(socket: &SocketRef, frame: &Frame) -> std::result::Result<(), SendError> {
    for event in &frame.socket_events {
        socket.emit(event.name, &(&event.payload, &frame.meta))?;
    }
    Ok(())
}

/// Takes a socket that fell behind out of live delivery at once (so what it has queued stays a
/// gapless run), then disconnects it as soon as its buffer has room for the disconnect packet;
/// the client reconnects with its last `seq` and recovers the rest from the log.
pub fn drop_lagging(socket: SocketRef, workspace: &str) {
    socket.leave(seq_room(workspace));
    socket.leave(workspace_room(workspace));
    tokio::spawn(async move {
        let deadline = Instant::now() + DISCONNECT_PATIENCE;
        loop {
            match socket.clone().disconnect() {
                Err(socketioxide::SocketError::InternalChannelFull)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Closed already, or never drained: engine.io's ping timeout ends it.
                _ => return,
            }
        }
    });
}
