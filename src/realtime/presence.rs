//! Presence: which users are connected in a workspace and which task rooms they are in. Kept
//! in this process's memory beside the sockets themselves, updated on connect, join, leave and
//! disconnect, and read by the `/api/tasks/socket/*` endpoints and the `presence` event.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde::Serialize;
use uuid::Uuid;

/// The Socket.IO event that tells a task room who is in it.
pub const PRESENCE_EVENT: &str = "presence";

/// The id anonymous sockets share when auth is off.
pub const ANONYMOUS: &str = "anonymous";

/// A user as presence shows them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct User {
    /// The token's `sub` (or `anonymous`).
    pub id: String,
    /// The token's `name`, else the id.
    pub name: String,
}

/// `GET /api/tasks/socket/stats` data.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Distinct users with at least one socket in the workspace.
    pub connected_users: usize,
    /// Task rooms with at least one socket in them.
    pub total_rooms: usize,
    /// For each connected user, the task ids whose rooms they are in.
    pub user_rooms: BTreeMap<String, Vec<Uuid>>,
}

/// `GET /api/tasks/socket/users/{taskId}` data, also the `presence` event payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Connected sockets by id, with their user and task rooms.
#[derive(Debug, Default)]
pub struct Presence {
    members: Mutex<HashMap<String, Member>>,
}

impl Presence {
    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<String, Member>> {
        self.members
            .lock()
            .expect("presence lock is never poisoned: no code panics while holding it")
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
    }

    /// Forgets a socket; returns the task rooms it was in.
    pub fn disconnect(&self, sid: &str) -> Vec<Uuid> {
        self.members()
            .remove(sid)
            .map(|m| m.tasks.into_iter().collect())
            .unwrap_or_default()
    }

    /// Adds a socket to a task room; false if it was already there.
    pub fn join(&self, sid: &str, task: Uuid) -> bool {
        self.members()
            .get_mut(sid)
            .is_some_and(|m| m.tasks.insert(task))
    }

    /// Takes a socket out of a task room; false if it was not there.
    pub fn leave(&self, sid: &str, task: Uuid) -> bool {
        self.members()
            .get_mut(sid)
            .is_some_and(|m| m.tasks.remove(&task))
    }

    /// Who is connected in `workspace` and in which rooms.
    pub fn stats(&self, workspace: &str) -> Stats {
        let members = self.members();
        let mut users: BTreeMap<String, BTreeSet<Uuid>> = BTreeMap::new();
        let mut rooms = BTreeSet::new();
        for m in members.values().filter(|m| m.workspace == workspace) {
            users
                .entry(m.user.id.clone())
                .or_default()
                .extend(m.tasks.iter().copied());
            rooms.extend(m.tasks.iter().copied());
        }
        Stats {
            connected_users: users.len(),
            total_rooms: rooms.len(),
            user_rooms: users
                .into_iter()
                .map(|(user, tasks)| (user, tasks.into_iter().collect()))
                .collect(),
        }
    }

    /// The users in a task's room.
    pub fn room(&self, workspace: &str, task: Uuid) -> RoomUsers {
        let users: BTreeSet<User> = self
            .members()
            .values()
            .filter(|m| m.workspace == workspace && m.tasks.contains(&task))
            .map(|m| m.user.clone())
            .collect();
        RoomUsers {
            task_id: task,
            count: users.len(),
            users: users.into_iter().collect(),
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

    #[test]
    fn stats_and_rooms_are_per_workspace_and_count_users_once() {
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
        let stats = p.stats("acme");
        assert_eq!(stats.connected_users, 2);
        assert_eq!(stats.total_rooms, 2);
        assert_eq!(stats.user_rooms["alice"].len(), 2);
        assert_eq!(stats.user_rooms["bob"], vec![t1]);
        let room = p.room("acme", t1);
        assert_eq!(room.count, 2);
        assert_eq!(room.users, vec![user("alice"), user("bob")]);
        assert!(p.leave("s3", t1));
        assert_eq!(p.room("acme", t1).count, 1);
        assert_eq!(p.disconnect("s1"), vec![t1]);
        assert_eq!(p.room("acme", t1).count, 0);
        assert_eq!(p.stats("other").connected_users, 1);
    }
}
