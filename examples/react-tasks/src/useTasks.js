import { useCallback, useEffect, useRef, useState } from 'react';
import { io } from 'socket.io-client';
import { SERVER_URL, TOKEN, TRANSPORTS } from './config.js';

/** GET /api/tasks, with the token as a Bearer header when one is configured. */
async function fetchTasks() {
  const headers = { Accept: 'application/json' };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const response = await fetch(`${SERVER_URL}/api/tasks?limit=1000&sort=created_at`, { headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error?.message || `GET /api/tasks answered ${response.status}`);
  return body;
}

/** Applies one change; an older version never replaces a newer one. */
function apply(tasks, { type, task }) {
  if (type === 'task_deleted') return tasks.filter((t) => t.id !== task.id);
  const i = tasks.findIndex((t) => t.id === task.id);
  if (i < 0) return [...tasks, task];
  if (tasks[i].version > task.version) return tasks;
  const next = tasks.slice();
  next[i] = task;
  return next;
}

/**
 * The task list, loaded over REST and kept live by taskwire's Socket.IO events
 * (`task_created`, `task_updated`, `task_deleted`, each with the task as its one argument).
 *
 * Returns { tasks, connection: {state, transport, error}, openTask(id), closeTask(id) }.
 * openTask emits `join-task` so the server can count who is looking at a task; nothing here
 * waits for its answer, so it works the same against servers that do not know the event.
 */
export function useTasks() {
  const [tasks, setTasks] = useState([]);
  const [loaded, setLoaded] = useState(false);
  const [connection, setConnection] = useState({ state: 'connecting', transport: null, error: null });
  const socketRef = useRef(null);

  useEffect(() => {
    const socket = io(SERVER_URL, {
      transports: TRANSPORTS,
      ...(TOKEN ? { auth: { token: TOKEN } } : {}),
    });
    socketRef.current = socket;

    // Events that arrive while the list is loading are kept and re-applied on top of it, so
    // a change committed during the request is not lost when the list replaces the state.
    let pending = null;
    const onChange = (type) => (task) => {
      pending?.push({ type, task });
      setTasks((current) => apply(current, { type, task }));
    };
    socket.on('task_created', onChange('task_created'));
    socket.on('task_updated', onChange('task_updated'));
    socket.on('task_deleted', onChange('task_deleted'));

    socket.on('connect', async () => {
      const engine = socket.io.engine;
      setConnection({ state: 'connected', transport: engine.transport.name, error: null });
      engine.once('upgrade', (transport) =>
        setConnection((c) => ({ ...c, transport: transport.name })),
      );
      // Events sent while we were disconnected are gone: (re)load the list on every connect.
      const seen = [];
      pending = seen;
      try {
        const list = await fetchTasks();
        setTasks(seen.reduce(apply, list));
        setLoaded(true);
      } catch (error) {
        setConnection((c) => ({ ...c, error: error.message }));
      } finally {
        if (pending === seen) pending = null;
      }
    });
    socket.on('disconnect', () => setConnection({ state: 'disconnected', transport: null, error: null }));
    socket.on('connect_error', (error) =>
      setConnection({ state: 'disconnected', transport: null, error: error.message }),
    );

    return () => {
      socket.disconnect();
      socketRef.current = null;
    };
  }, []);

  const openTask = useCallback((id) => socketRef.current?.emit('join-task', id), []);
  const closeTask = useCallback((id) => socketRef.current?.emit('leave-task', id), []);

  return { tasks, loaded, connection, openTask, closeTask };
}
