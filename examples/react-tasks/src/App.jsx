import { useState } from 'react';
import { SERVER_URL } from './config.js';
import { useTasks } from './useTasks.js';

const LABELS = { pending: 'Pending', in_progress: 'In progress', completed: 'Completed' };

export default function App() {
  const { tasks, loaded, connection, openTask, closeTask } = useTasks();
  const [openId, setOpenId] = useState(null);
  const open = tasks.find((t) => t.id === openId) ?? null;

  const toggle = (id) => {
    if (openId) closeTask(openId);
    if (id === openId) {
      setOpenId(null);
    } else {
      openTask(id);
      setOpenId(id);
    }
  };

  return (
    <main>
      <h1>Tasks</h1>
      <p
        id="connection"
        role="status"
        data-state={connection.state}
        data-transport={connection.transport ?? ''}
        data-loaded={loaded ? 'yes' : 'no'}
      >
        {connection.state === 'connected'
          ? `Live via ${connection.transport} from ${SERVER_URL}`
          : `Not connected to ${SERVER_URL}${connection.error ? `: ${connection.error}` : ''}`}
      </p>
      <ul id="tasks">
        {tasks.map((task) => (
          <li key={task.id} data-id={task.id} data-status={task.status}>
            <button type="button" aria-expanded={task.id === openId} onClick={() => toggle(task.id)}>
              <span className="title">{task.title}</span> <span className="status">({LABELS[task.status] ?? task.status})</span>
            </button>
          </li>
        ))}
      </ul>
      {open && (
        <section id="details" aria-label="Task details">
          <h2>{open.title}</h2>
          <p>{open.description || 'No description.'}</p>
          <p>Assignee: {open.assignee ?? 'nobody'} · version {open.version}</p>
        </section>
      )}
    </main>
  );
}
