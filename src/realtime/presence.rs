//! Presence: which users are connected in a workspace and which task rooms they are in. Kept
//! in this process's memory beside the sockets themselves, updated on connect, join, leave and
//! disconnect, and read by the `/api/tasks/socket/*` endpoints and the `presence` event.
//!
//! With several processes, each one also keeps its snapshot of every workspace in Redis
//! ([`crate::cluster::presence`]); answers sum this process's members and the other processes'
//! snapshots, and `presence` events reach the task room's sockets on every process. When Redis
//! cannot be reached, answers fall back to this process's members.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::cluster::presence::{PresenceBoard, RENEW_EVERY};

/// The Socket.IO event that tells a task room who is in it.
pub const PRESENCE_EVENT: &str = "presence";

/// The id anonymous sockets share when auth is off.
pub const ANONYMOUS: &str = "anonymous";

/// A user as presence shows them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[schema(as = PresenceUser)]
pub struct User {
    /// The token's `sub` (or `anonymous`).
    pub id: String,
    /// The token's `name`, else the id.
    pub name: String,
}

/// `GET /api/tasks/socket/stats` data.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PresenceStats)]
pub struct Stats {
    /// Distinct users with at least one socket in the workspace.
    pub connected_users: usize,
    /// Task rooms with at least one socket in them.
    pub total_rooms: usize,
    /// For each connected user, the task ids whose rooms they are in.
    pub user_rooms: BTreeMap<String, Vec<Uuid>>,
}

/// `GET /api/tasks/socket/users/{taskId}` data, also the `presence` event payload.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomUsers {
    /// The task whose room this is.
    pub task_id: Uuid,
    /// Users in the room, each once, by id.
    pub users: Vec<User>,
    /// How many users.
    pub count: usize,
}

#[derive(Debug)]
struct Member {
    workspace: String,
    user: User,
    tasks: BTreeSet<Uuid>,
}

/// One user in a snapshot: their name and the task rooms any of their sockets is in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SnapshotUser {
    name: String,
    tasks: BTreeSet<Uuid>,
}

/// Who is connected in one workspace, by user id: what a process shares with the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Snapshot(BTreeMap<String, SnapshotUser>);

impl Snapshot {
    fn add(&mut self, id: &str, name: &str, tasks: impl IntoIterator<Item = Uuid>) {
        let user = self.0.entry(id.to_owned()).or_insert_with(|| SnapshotUser {
            name: name.to_owned(),
            tasks: BTreeSet::new(),
        });
        user.tasks.extend(tasks);
    }

    fn merge(&mut self, other: Snapshot) {
        for (id, user) in other.0 {
            self.add(&id, &user.name, user.tasks);
        }
    }

    fn stats(&self) -> Stats {
        let rooms: BTreeSet<Uuid> = self
            .0
            .values()
            .flat_map(|u| u.tasks.iter().copied())
            .collect();
        Stats {
            connected_users: self.0.len(),
            total_rooms: rooms.len(),
            user_rooms: self
                .0
                .iter()
                .map(|(id, u)| (id.clone(), u.tasks.iter().copied().collect()))
                .collect(),
        }
    }

    fn room(&self, task: Uuid) -> RoomUsers {
        let users: Vec<User> = self
            .0
            .iter()
            .filter(|(_, u)| u.tasks.contains(&task))
            .map(|(id, u)| User {
                id: id.clone(),
                name: u.name.clone(),
            })
            .collect();
        RoomUsers {
            task_id: task,
            count: users.len(),
            users,
        }
    }
}

/// The other processes, when there are any.
struct Shared {
    board: PresenceBoard,
    cluster: Arc<Cluster>,
    /// Workspaces whose snapshot changed, for the task that stores them.
    dirty: mpsc::UnboundedSender<String>,
}

/// Connected sockets by id, with their user and task rooms.
#[derive(Default)]
pub struct Presence {
    members: Mutex<HashMap<String, Member>>,
    shared: Option<Shared>,
}

impl Presence {
    /// Presence shared with the other processes of `cluster`; stores this process's snapshots
    /// until `shutdown`, then removes them.
    pub fn shared(
        cluster: Arc<Cluster>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Arc<Presence> {
        let (dirty, changes) = mpsc::unbounded_channel();
        let presence = Arc::new(Presence {
            members: Mutex::default(),
            shared: Some(Shared {
                board: PresenceBoard::new(cluster.clone()),
                cluster,
                dirty,
            }),
        });
        tracker.spawn(presence.clone().keep_board(changes, shutdown));
        presence
    }

    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<String, Member>> {
        self.members
            .lock()
            .expect("presence lock is never poisoned: no code panics while holding it")
    }

    fn changed(&self, workspace: &str) {
        if let Some(shared) = &self.shared {
            let _ = shared.dirty.send(workspace.to_owned());
        }
    }

    /// Records a connected socket.
    pub fn connect(&self, sid: &str, workspace: &str, user: User) {
        self.members().insert(
            sid.to_owned(),
            Member {
                workspace: workspace.to_owned(),
                user,
                tasks: BTreeSet::new(),
            },
        );
        self.changed(workspace);
    }

    /// Forgets a socket; returns the task rooms it was in.
    pub fn disconnect(&self, sid: &str) -> Vec<Uuid> {
        let Some(member) = self.members().remove(sid) else {
            return Vec::new();
        };
        self.changed(&member.workspace);
        member.tasks.into_iter().collect()
    }

    /// Adds a socket to a task room; false if it was already there.
    pub fn join(&self, sid: &str, task: Uuid) -> bool {
        let workspace = {
            let mut members = self.members();
            let Some(m) = members.get_mut(sid) else {
                return false;
            };
            if !m.tasks.insert(task) {
                return false;
            }
            m.workspace.clone()
        };
        self.changed(&workspace);
        true
    }

    /// Takes a socket out of a task room; false if it was not there.
    pub fn leave(&self, sid: &str, task: Uuid) -> bool {
        let workspace = {
            let mut members = self.members();
            let Some(m) = members.get_mut(sid) else {
                return false;
            };
            if !m.tasks.remove(&task) {
                return false;
            }
            m.workspace.clone()
        };
        self.changed(&workspace);
        true
    }

    /// Who is connected in `workspace` and in which rooms, on every process.
    pub async fn stats(&self, workspace: &str) -> Stats {
        self.everywhere(workspace).await.stats()
    }

    /// The users in a task's room, on every process.
    pub async fn room(&self, workspace: &str, task: Uuid) -> RoomUsers {
        self.everywhere(workspace).await.room(task)
    }

    /// Makes this process's part of `workspace` visible to the other processes now, so that
    /// what they answer next includes a change made here; call before announcing it.
    pub async fn settle(&self, workspace: &str) {
        if let Some(shared) = &self.shared {
            self.store(shared, workspace).await;
        }
    }

    /// Sends a task room's `presence` event to the room's sockets on the other processes.
    pub fn broadcast(&self, workspace: &str, users: &RoomUsers) {
        let Some(shared) = &self.shared else {
            return;
        };
        match serde_json::value::to_raw_value(users) {
            Ok(payload) => shared
                .cluster
                .publish_presence(workspace, users.task_id, &payload),
            Err(err) => tracing::error!(error = %err, "could not render a presence update"),
        }
    }

    fn local(&self, workspace: &str) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for m in self.members().values().filter(|m| m.workspace == workspace) {
            snapshot.add(&m.user.id, &m.user.name, m.tasks.iter().copied());
        }
        snapshot
    }

    async fn everywhere(&self, workspace: &str) -> Snapshot {
        let mut snapshot = self.local(workspace);
        let Some(shared) = &self.shared else {
            return snapshot;
        };
        match shared.board.others(workspace).await {
            Ok(others) => {
                for text in others {
                    match serde_json::from_str::<Snapshot>(&text) {
                        Ok(other) => snapshot.merge(other),
                        Err(err) => tracing::warn!(error = %err, "unreadable presence snapshot"),
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err,
                "cannot read other processes' presence; answering with this process's"),
        }
        snapshot
    }

    async fn store(&self, shared: &Shared, workspace: &str) {
        let snapshot = self.local(workspace);
        let payload = if snapshot.0.is_empty() {
            None
        } else {
            match serde_json::value::to_raw_value(&snapshot) {
                Ok(payload) => Some(payload),
                Err(err) => {
                    tracing::error!(error = %err, "could not render a presence snapshot");
                    return;
                }
            }
        };
        if let Err(err) = shared.board.store(workspace, payload.as_deref()).await {
            tracing::debug!(error = %err, %workspace, "cannot store presence in Redis yet");
        }
    }

    /// Stores changed snapshots as they change and all of them every [`RENEW_EVERY`] (which
    /// also restores them after Redis lost its data); removes them on shutdown.
    async fn keep_board(
        self: Arc<Self>,
        mut changes: mpsc::UnboundedReceiver<String>,
        shutdown: CancellationToken,
    ) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stored: HashSet<String> = HashSet::new();
        loop {
            let due: HashSet<String> = tokio::select! {
                Some(first) = changes.recv() => {
                    let mut due = HashSet::from([first]);
                    while let Ok(more) = changes.try_recv() {
                        due.insert(more);
                    }
                    due
                }
                _ = renew.tick() => {
                    let mut due: HashSet<String> =
                        self.members().values().map(|m| m.workspace.clone()).collect();
                    due.extend(stored.iter().cloned());
                    due
                }
                () = shutdown.cancelled() => break,
            };
            for workspace in due {
                self.store(shared, &workspace).await;
                stored.insert(workspace);
            }
            let members = self.members();
            stored.retain(|ws| members.values().any(|m| &m.workspace == ws));
        }
        for workspace in stored {
            if let Err(err) = shared.board.store(&workspace, None).await {
                tracing::debug!(error = %err, "cannot remove presence from Redis on shutdown");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: id.to_uppercase(),
        }
    }

    #[tokio::test]
    async fn stats_and_rooms_are_per_workspace_and_count_users_once() {
        let p = Presence::default();
        let (t1, t2) = (Uuid::now_v7(), Uuid::now_v7());
        p.connect("s1", "acme", user("alice"));
        p.connect("s2", "acme", user("alice"));
        p.connect("s3", "acme", user("bob"));
        p.connect("s4", "other", user("eve"));
        assert!(p.join("s1", t1));
        assert!(!p.join("s1", t1));
        p.join("s2", t2);
        p.join("s3", t1);
        p.join("s4", t1);
        let stats = p.stats("acme").await;
        assert_eq!(stats.connected_users, 2);
        assert_eq!(stats.total_rooms, 2);
        assert_eq!(stats.user_rooms["alice"].len(), 2);
        assert_eq!(stats.user_rooms["bob"], vec![t1]);
        let room = p.room("acme", t1).await;
        assert_eq!(room.count, 2);
        assert_eq!(room.users, vec![user("alice"), user("bob")]);
        assert!(p.leave("s3", t1));
        assert_eq!(p.room("acme", t1).await.count, 1);
        assert_eq!(p.disconnect("s1"), vec![t1]);
        assert_eq!(p.room("acme", t1).await.count, 0);
        assert_eq!(p.stats("other").await.connected_users, 1);
    }

    #[test]
    fn snapshots_of_several_processes_add_up() {
        let (t1, t2) = (Uuid::now_v7(), Uuid::now_v7());
        let mut here = Snapshot::default();
        here.add("alice", "Alice", [t1]);
        here.add("bob", "Bob", []);
        let mut there = Snapshot::default();
        there.add("alice", "Alice", [t2]);
        there.add("carol", "Carol", [t1]);
        let wire: Snapshot = serde_json::from_str(&serde_json::to_string(&there).unwrap()).unwrap();
        here.merge(wire);
        let stats = here.stats();
        assert_eq!(stats.connected_users, 3);
        assert_eq!(stats.total_rooms, 2);
        assert_eq!(stats.user_rooms["alice"], vec![t1.min(t2), t1.max(t2)]);
        assert_eq!(stats.user_rooms["bob"], Vec::<Uuid>::new());
        let room = here.room(t1);
        assert_eq!(room.count, 2);
        assert_eq!(room.users[0].id, "alice");
        assert_eq!(room.users[1].name, "Carol");
    }
}
