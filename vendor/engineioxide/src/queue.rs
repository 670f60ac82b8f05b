//! A bounded single-consumer packet queue that allocates nothing until the first packet.
//!
//! It replaces `tokio::sync::mpsc` for each socket's outgoing packets (and its heartbeat
//! signal): tokio's bounded channel allocates its first 32-slot block when it is created, which
//! is several kilobytes per connection before anything is sent, and most sockets of a
//! real-time server only ever hold a packet or two at a time. The API is the subset of tokio's
//! that engine.io uses, with tokio's error types, so the transports read the same.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;
pub use tokio::sync::mpsc::error::{SendError, TryRecvError, TrySendError};

/// Creates a queue that holds at most `capacity` values, counting reserved places.
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "a queue needs room for at least one value");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            reserved: 0,
            capacity,
            receiver_closed: false,
            diverted: false,
            sender_dropped: false,
            receiver_waker: None,
            senders_waiting: 0,
        }),
        room: Notify::new(),
        closed: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes senders waiting in [`Sender::send`] when a value leaves a full queue.
    room: Notify,
    /// Wakes [`Sender::closed`] when the receiver closes.
    closed: Notify,
}

struct State<T> {
    queue: VecDeque<T>,
    reserved: usize,
    capacity: usize,
    receiver_closed: bool,
    /// Set by [`Receiver::divert`]: values now go elsewhere, and are handed back.
    diverted: bool,
    sender_dropped: bool,
    receiver_waker: Option<Waker>,
    senders_waiting: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing runs user code under this lock, so a poisoned lock still holds a
        // consistent queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a value whose place is already accounted for, then wakes the receiver.
    fn push(&self, mut state: MutexGuard<'_, State<T>>, value: T) {
        if state.receiver_closed {
            return;
        }
        state.queue.push_back(value);
        let waker = state.receiver_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> State<T> {
    fn full(&self) -> bool {
        self.queue.len() + self.reserved >= self.capacity
    }

    /// Whether no value is taken any more: closed, or diverted.
    fn refusing(&self) -> bool {
        self.receiver_closed || self.diverted
    }
}

/// The sending half; there is exactly one per queue.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A place reserved in the queue, so that the value sent with it cannot fail for lack of room.
pub(crate) struct Permit<'a, T> {
    shared: &'a Shared<T>,
}

impl<T> Permit<'_, T> {
    /// Queues the value in the reserved place. If the queue was diverted since the place
    /// was reserved, the value is handed back, to be sent where the values go now.
    pub(crate) fn send(self, value: T) -> Result<(), T> {
        let shared = self.shared;
        std::mem::forget(self);
        let mut state = shared.lock();
        state.reserved -= 1;
        if state.diverted {
            return Err(value);
        }
        shared.push(state, value);
        Ok(())
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.reserved -= 1;
        let wake_senders = state.senders_waiting > 0;
        drop(state);
        if wake_senders {
            self.shared.room.notify_waiters();
        }
    }
}

impl<T> Sender<T> {
    /// Queues a value if there is room.
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let state = self.shared.lock();
        if state.refusing() {
            return Err(TrySendError::Closed(value));
        }
        if state.full() {
            return Err(TrySendError::Full(value));
        }
        self.shared.push(state, value);
        Ok(())
    }

    /// Reserves a place for one value if there is room.
    pub(crate) fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        let mut state = self.shared.lock();
        if state.refusing() {
            return Err(TrySendError::Closed(()));
        }
        if state.full() {
            return Err(TrySendError::Full(()));
        }
        state.reserved += 1;
        Ok(Permit {
            shared: &self.shared,
        })
    }

    /// Queues a value, waiting for room if the queue is full.
    pub(crate) async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = value;
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if state.refusing() {
                    return Err(SendError(value));
                }
                if !state.full() {
                    self.shared.push(state, value);
                    return Ok(());
                }
                state.senders_waiting += 1;
            }
            room.await;
            self.shared.lock().senders_waiting -= 1;
            // The value is still ours: only a successful push takes it.
            value = match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(v)) => return Err(SendError(v)),
                Err(TrySendError::Full(v)) => v,
            };
        }
    }

    /// Whether the receiver has closed the queue.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().receiver_closed
    }

    /// Resolves once the receiver has closed the queue.
    pub(crate) async fn closed(&self) {
        loop {
            let closed = self.shared.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.is_closed() {
                return;
            }
            closed.await;
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.sender_dropped = true;
        let waker = state.receiver_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Sender")
            .field("queued", &state.queue.len())
            .field("reserved", &state.reserved)
            .field("capacity", &state.capacity)
            .field("closed", &state.receiver_closed)
            .finish()
    }
}

/// The receiving half.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// Takes the next value; `Ready(None)` once the queue is empty and closed or the sender
    /// is gone.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(value) = state.queue.pop_front() {
            let wake_senders = state.senders_waiting > 0;
            drop(state);
            if wake_senders {
                self.shared.room.notify_waiters();
            }
            return Poll::Ready(Some(value));
        }
        if state.receiver_closed || state.sender_dropped {
            return Poll::Ready(None);
        }
        match &mut state.receiver_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next value; `None` once the queue is empty and closed.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Takes the next value if there is one.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.shared.lock();
        match state.queue.pop_front() {
            Some(value) => {
                let wake_senders = state.senders_waiting > 0;
                drop(state);
                if wake_senders {
                    self.shared.room.notify_waiters();
                }
                Ok(value)
            }
            None if state.receiver_closed || state.sender_dropped => {
                Err(TryRecvError::Disconnected)
            }
            None => Err(TryRecvError::Empty),
        }
    }

    /// Hands every queued value to `take` and, from then on, refuses values the way a closed
    /// queue does (`Closed`, a diverted [`Permit`] hands its value back) without closing: the
    /// sender is not told the queue is closed. `take` runs under the queue's lock, so a
    /// sender that is refused sees whatever `take` set up to send its values elsewhere, and
    /// nothing sent after `take` can overtake what it was given. The queue's storage is
    /// released.
    pub(crate) fn divert(&mut self, take: impl FnOnce(VecDeque<T>)) {
        let mut state = self.shared.lock();
        state.diverted = true;
        take(std::mem::take(&mut state.queue));
        let wake_senders = state.senders_waiting > 0;
        drop(state);
        if wake_senders {
            self.shared.room.notify_waiters();
        }
    }

    /// Refuses further values; those already queued can still be received.
    pub(crate) fn close(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_closed = true;
        let wake_senders = state.senders_waiting > 0;
        drop(state);
        self.shared.closed.notify_waiters();
        if wake_senders {
            self.shared.room.notify_waiters();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Receiver")
            .field("queued", &state.queue.len())
            .field("closed", &state.receiver_closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn values_arrive_in_order_and_the_capacity_counts_reservations() {
        let (tx, mut rx) = channel::<u32>(2);
        tx.try_send(1).unwrap();
        let permit = tx.try_reserve().unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
        permit.send(2).unwrap();
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv().unwrap(), 2);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn a_dropped_permit_gives_its_place_back() {
        let (tx, _rx) = channel::<u32>(1);
        drop(tx.try_reserve().unwrap());
        tx.try_send(1).unwrap();
    }

    #[tokio::test]
    async fn the_receiver_wakes_when_a_value_arrives() {
        let (tx, mut rx) = channel::<u32>(4);
        let reader = tokio::spawn(async move { rx.recv().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.try_send(7).unwrap();
        assert_eq!(reader.await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn send_waits_for_room() {
        let (tx, mut rx) = channel::<u32>(1);
        tx.try_send(1).unwrap();
        let tx = Arc::new(tx);
        let writer = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(2).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !writer.is_finished(),
            "send should wait while the queue is full"
        );
        assert_eq!(rx.recv().await, Some(1));
        writer.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
    }

    #[tokio::test]
    async fn closing_refuses_new_values_and_wakes_closed() {
        let (tx, mut rx) = channel::<u32>(4);
        tx.try_send(1).unwrap();
        let tx = Arc::new(tx);
        let waiter = tokio::spawn({
            let tx = tx.clone();
            async move { tx.closed().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        rx.close();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("closed() should resolve")
            .unwrap();
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send(2), Err(TrySendError::Closed(2))));
        assert_eq!(rx.recv().await, Some(1), "queued values survive the close");
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn diverting_hands_over_the_queue_in_order_and_refuses_later_values() {
        let (tx, mut rx) = channel::<u32>(4);
        tx.try_send(1).unwrap();
        let permit = tx.try_reserve().unwrap();
        tx.try_send(2).unwrap();
        let mut taken = Vec::new();
        rx.divert(|queued| taken.extend(queued));
        assert_eq!(taken, [1, 2]);
        assert!(matches!(tx.try_send(3), Err(TrySendError::Closed(3))));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Closed(()))));
        assert_eq!(
            permit.send(4),
            Err(4),
            "a permit from before hands its value back"
        );
        assert!(!tx.is_closed(), "a diverted queue is not closed");
        assert!(matches!(tx.send(5).await, Err(SendError(5))));
    }

    #[tokio::test]
    async fn a_dropped_sender_ends_the_queue_after_its_values() {
        let (tx, mut rx) = channel::<u32>(4);
        tx.try_send(1).unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, None);
    }
}
