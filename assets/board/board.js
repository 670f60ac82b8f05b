// taskwire board: tasks in one column per status, kept in sync through the SSE stream.
//
// No framework and no build step: this file is embedded in the taskwire binary and served as
// it is. It is an ordinary client of the public API:
// - the task list comes from GET /api/tasks, changes go out over REST with If-Match, so an edit
//   based on an old version is refused (412) instead of silently overwriting someone's work;
// - live changes come from EventSource on /api/tasks/stream. EventSource reconnects by itself
//   and sends Last-Event-ID, and the server replays what was missed, so a restart of the server
//   needs no refetch. A `resync_required` event (the log no longer reaches back far enough)
//   does trigger one;
// - with auth on, a token pasted into the page is kept in localStorage and sent as a Bearer
//   header, and as ?token= on the stream because EventSource cannot set headers.
'use strict';

(() => {
  const STATUSES = [
    ['pending', 'Pending'],
    ['in_progress', 'In progress'],
    ['completed', 'Completed'],
  ];
  const STATUS_LABEL = Object.fromEntries(STATUSES);
  const TOKEN_KEY = 'taskwire.token';
  const LIST_LIMIT = 1000; // the API's largest page
  const OFFLINE_AFTER_MS = 30_000;
  const CONN_TEXT = {
    connecting: 'Connecting…',
    live: 'Live',
    reconnecting: 'Reconnecting…',
    offline: 'Offline, retrying',
    auth: 'Token needed',
  };

  // ---- state -------------------------------------------------------------------------------

  /** id -> task, what the board shows. */
  const tasks = new Map();
  /** Ids of deleted tasks, so a late response never brings one back (ids are never reused). */
  const tombstones = new Set();
  /** The id of the last SSE event applied, for resuming in a new EventSource. */
  let lastSeq = null;
  let source = null;
  let everOpened = false;
  let reconnectTimer = null;
  let backoff = 500;
  /** When the stream was lost; null while it is up. */
  let downSince = null;
  /** Events seen while a list fetch is in flight: id -> task, or null when deleted. */
  const fetchesInFlight = new Set();

  // Which changes this tab made, so only other people's changes raise a toast. The SSE event
  // for our own change may arrive before the REST response that tells us its version, so
  // events that arrive while a request of ours is in flight wait for it before deciding.
  const own = new Set();
  let inflight = 0;
  let deferred = [];

  let dragging = false;
  let renderQueued = false;
  /** Ids already on screen: only cards that are new to the board get the arrival animation. */
  const shown = new Set();
  /** The task in the edit dialog: {id, version, opener}. */
  let editing = null;
  /** The task in the delete dialog: {id, opener}. */
  let deleting = null;

  // ---- DOM helpers -------------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);

  /** Builds an element; children are nodes or text (never parsed as HTML). */
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === false || value === null || value === undefined) continue;
      if (key === 'class') el.className = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const quoted = (title) => `“${title}”`;

  // ---- REST --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
    }
  }

  function token() {
    try {
      return localStorage.getItem(TOKEN_KEY) || '';
    } catch {
      return ''; // storage can be disabled; the board then simply works without a token
    }
  }

  /** One REST call. Resolves {data, response}; rejects with an ApiError carrying the server's code. */
  async function request(method, path, { body, version } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (version !== undefined) headers['If-Match'] = `"${version}"`;
    const bearer = token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached, so nothing was saved. Try again when the board shows Live.');
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.status === 401) needToken(data?.error?.message);
    if (!response.ok) {
      const err = data?.error ?? {};
      throw new ApiError(
        response.status,
        err.code || `http_${response.status}`,
        err.message || `The server answered ${response.status} ${response.statusText}`.trim(),
        err.field,
      );
    }
    return { data, response };
  }

  /** A change made by this tab: remembers it as ours and applies the answer at once. */
  async function mutate(method, id, body, version) {
    inflight += 1;
    try {
      const path = id ? `/api/tasks/${encodeURIComponent(id)}` : '/api/tasks';
      const { data } = await request(method, path, { body, version });
      if (method === 'DELETE') {
        own.add(`${id}:deleted`);
        forget(id);
      } else if (data?.id) {
        own.add(`${data.id}:${data.version}`);
        upsert(data);
      }
      scheduleRender();
      return data;
    } finally {
      inflight -= 1;
      if (inflight === 0) {
        const waiting = deferred;
        deferred = [];
        for (const item of waiting) decideToast(item);
      }
    }
  }

  // ---- task state --------------------------------------------------------------------------

  function upsert(task) {
    if (tombstones.has(task.id)) return;
    const current = tasks.get(task.id);
    if (!current || task.version >= current.version) tasks.set(task.id, task);
  }

  function forget(id) {
    tombstones.add(id);
    tasks.delete(id);
  }

  function applyEvent(type, task) {
    for (const seen of fetchesInFlight) seen.set(task.id, type === 'task_deleted' ? null : task);
    if (type === 'task_deleted') forget(task.id);
    else upsert(task);
    scheduleRender();
  }

  /** Loads the whole list, merging in events that arrived while it was on its way. */
  async function refetch() {
    const seen = new Map();
    fetchesInFlight.add(seen);
    try {
      const { data, response } = await request('GET', `/api/tasks?limit=${LIST_LIMIT}&sort=created_at`);
      const next = new Map();
      for (const task of Array.isArray(data) ? data : []) {
        if (!tombstones.has(task.id)) next.set(task.id, task);
      }
      for (const [id, task] of seen) {
        if (task === null) next.delete(id);
        else if (!next.has(id) || next.get(id).version < task.version) next.set(id, task);
      }
      tasks.clear();
      for (const [id, task] of next) tasks.set(id, task);
      const total = Number(response.headers.get('x-total-count'));
      const note = $('#note');
      note.hidden = !(total > LIST_LIMIT);
      note.textContent = note.hidden ? '' : `Showing the first ${LIST_LIMIT} of ${total} tasks.`;
      hideAuth();
      scheduleRender();
    } catch (err) {
      if (err.status !== 401) alertToast(`Could not load the tasks: ${err.message}`);
    } finally {
      fetchesInFlight.delete(seen);
    }
  }

  /** Fetches one task again after a conflict, so the board shows what the server has. */
  async function refreshTask(id) {
    try {
      const { data } = await request('GET', `/api/tasks/${encodeURIComponent(id)}`);
      upsert(data);
      scheduleRender();
      return data;
    } catch (err) {
      if (err.status === 404) {
        forget(id);
        scheduleRender();
      }
      return null;
    }
  }

  // ---- live stream -------------------------------------------------------------------------

  function setConn(state) {
    const conn = $('#conn');
    if (conn.dataset.state === state) return;
    conn.dataset.state = state;
    $('#conn-text').textContent = CONN_TEXT[state];
  }

  function openStream({ resume = false } = {}) {
    clearTimeout(reconnectTimer);
    if (source) source.close();
    const params = new URLSearchParams();
    const bearer = token();
    if (bearer) params.set('token', bearer);
    // A new EventSource starts with no Last-Event-ID of its own; tell the server where we were.
    if (resume && lastSeq !== null) params.set('lastEventId', String(lastSeq));
    const query = params.toString();
    const stream = new EventSource(`/api/tasks/stream${query ? `?${query}` : ''}`);
    source = stream;

    stream.onopen = () => {
      if (source !== stream) return;
      const first = !everOpened;
      const wasDown = downSince !== null;
      everOpened = true;
      downSince = null;
      backoff = 500;
      setConn('live');
      // The first time, load the list now that live events are flowing (none can fall in
      // between). After a drop, the server replays from Last-Event-ID, unless this tab never
      // saw an event and so has no position to resume from.
      if (first || (wasDown && lastSeq === null)) refetch();
    };

    stream.onmessage = (event) => {
      if (source !== stream) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'resync_required') {
        refetch();
        return;
      }
      if (event.lastEventId) lastSeq = Number(event.lastEventId);
      const task = message.task;
      if (!task?.id || !/^task_(created|updated|deleted)$/.test(message.type)) return;
      const before = tasks.get(task.id);
      applyEvent(message.type, task);
      const key = message.type === 'task_deleted' ? `${task.id}:deleted` : `${task.id}:${task.version}`;
      const item = { key, type: message.type, task, before };
      if (inflight > 0) deferred.push(item);
      else decideToast(item);
      noticeEditConflict(message.type, task, key);
    };

    stream.onerror = () => {
      if (source !== stream) return;
      lost();
      // CONNECTING: the browser retries by itself (after `retry:`), sending Last-Event-ID.
      // CLOSED: it gave up (an error status such as 401 or 503); we retry with a back-off.
      if (stream.readyState === EventSource.CLOSED) {
        stream.close();
        source = null;
        scheduleReconnect();
      }
    };
  }

  function lost() {
    if (downSince === null) downSince = Date.now();
    if ($('#conn').dataset.state === 'auth') return;
    const long = Date.now() - downSince >= OFFLINE_AFTER_MS;
    setConn(!navigator.onLine || long || !everOpened ? 'offline' : 'reconnecting');
    setTimeout(() => {
      if (downSince !== null && Date.now() - downSince >= OFFLINE_AFTER_MS && $('#conn').dataset.state === 'reconnecting') setConn('offline');
    }, OFFLINE_AFTER_MS + 100);
  }

  function scheduleReconnect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(async () => {
      // Ask REST why the stream failed: a missing token needs the user, not another attempt.
      try {
        await request('GET', '/api/tasks?limit=1');
      } catch (err) {
        if (err.status === 401) return;
      }
      openStream({ resume: true });
    }, backoff);
    backoff = Math.min(backoff * 2, 15_000);
  }

  window.addEventListener('offline', () => {
    if (downSince === null) downSince = Date.now();
    setConn('offline');
  });
  window.addEventListener('online', () => {
    const state = $('#conn').dataset.state;
    if (state !== 'live' && state !== 'auth') openStream({ resume: true });
  });

  // ---- auth --------------------------------------------------------------------------------

  function needToken(message) {
    clearTimeout(reconnectTimer);
    if (source) {
      source.close();
      source = null;
    }
    downSince ??= Date.now();
    setConn('auth');
    const panel = $('#auth');
    const wasHidden = panel.hidden;
    panel.hidden = false;
    $('#auth-error').textContent = token()
      ? `The saved token was refused${message ? `: ${message}` : ''}.`
      : '';
    $('#token-forget').hidden = !token();
    if (wasHidden) $('#token-input').focus();
  }

  function hideAuth() {
    $('#auth').hidden = true;
    $('#token-button').hidden = !token();
  }

  $('#auth-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('#token-input').value.trim();
    if (!value) {
      $('#auth-error').textContent = 'Paste a token first.';
      return;
    }
    try {
      localStorage.setItem(TOKEN_KEY, value);
    } catch {
      $('#auth-error').textContent = 'This browser does not allow storing the token.';
      return;
    }
    $('#token-input').value = '';
    $('#auth-error').textContent = '';
    hideAuth();
    setConn('connecting');
    everOpened = false; // load the list again with the new identity
    openStream({ resume: true });
  });

  $('#token-forget').addEventListener('click', () => {
    try {
      localStorage.removeItem(TOKEN_KEY);
    } catch {
      /* nothing stored */
    }
    $('#auth-error').textContent = '';
    $('#token-forget').hidden = true;
    $('#token-button').hidden = true;
  });

  $('#token-button').addEventListener('click', () => {
    const panel = $('#auth');
    panel.hidden = false;
    $('#token-forget').hidden = !token();
    $('#token-input').focus();
  });

  // ---- toasts ------------------------------------------------------------------------------

  function showToast(region, text, kind) {
    const el = h('div', { class: `toast ${kind}` },
      h('span', { class: 'toast-text' }, text),
      h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'));
    region.append(el);
    while (region.children.length > 4) region.firstElementChild.remove();
    setTimeout(() => {
      el.classList.add('leaving');
      setTimeout(() => el.remove(), 250);
    }, kind === 'error' ? 9000 : 5000);
  }

  const infoToast = (text) => showToast($('#toasts'), text, 'info');
  const alertToast = (text) => showToast($('#alerts'), text, 'error');

  function decideToast({ key, type, task, before }) {
    if (own.delete(key)) return; // our own change coming back
    const by = task.updated_by || task.created_by;
    const who = by ? `${by} ` : 'Someone ';
    let text;
    if (type === 'task_created') text = `${who}added ${quoted(task.title)}`;
    else if (type === 'task_deleted') text = `${who}deleted ${quoted(task.title)}`;
    else if (before && before.status !== task.status) {
      text = `${who}moved ${quoted(task.title)} to ${STATUS_LABEL[task.status] ?? task.status}`;
    } else text = `${who}edited ${quoted(task.title)}`;
    infoToast(text);
  }

  // ---- rendering ---------------------------------------------------------------------------

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(() => {
      renderQueued = false;
      render();
    });
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });

  function dueLabel(task) {
    if (!task.due_date) return null;
    const due = new Date(`${String(task.due_date).slice(0, 10)}T00:00:00`);
    if (Number.isNaN(due.getTime())) return null;
    const today = new Date();
    today.setHours(0, 0, 0, 0);
    const overdue = task.status !== 'completed' && due < today;
    return h('span', { class: overdue ? 'due overdue' : 'due' }, overdue ? `Overdue: ${dateFormat.format(due)}` : `Due ${dateFormat.format(due)}`);
  }

  function card(task) {
    const titleId = `task-${task.id}-title`;
    const select = h('select', {
      class: 'card-status',
      'aria-label': `Status of ${quoted(task.title)}`,
      dataset: { role: 'status' },
      onchange: (event) => move(task.id, event.target.value),
    }, STATUSES.map(([value, label]) => h('option', { value, selected: value === task.status }, label)));
    const meta = [
      task.assignee ? h('span', { class: 'assignee', title: task.assignee_email || '' }, task.assignee) : null,
      dueLabel(task),
    ].filter(Boolean);
    const fresh = !shown.has(task.id);
    shown.add(task.id);
    return h('li', {
      class: fresh ? 'card fresh' : 'card',
      draggable: 'true',
      'aria-labelledby': titleId,
      dataset: { id: task.id, version: String(task.version) },
      ondragstart: (event) => {
        dragging = true;
        event.dataTransfer.setData('text/plain', task.id);
        event.dataTransfer.effectAllowed = 'move';
        event.currentTarget.classList.add('dragging');
      },
      ondragend: (event) => {
        event.currentTarget.classList.remove('dragging');
        endDrag();
      },
    },
    h('h3', { class: 'card-title', id: titleId }, task.title),
    task.description ? h('p', { class: 'card-desc' }, task.description) : null,
    meta.length ? h('p', { class: 'card-meta' }, meta) : null,
    h('div', { class: 'card-actions' },
      select,
      h('button', { type: 'button', class: 'ghost small', dataset: { role: 'edit' }, 'aria-label': `Edit ${quoted(task.title)}`, onclick: () => openEdit(task.id) }, 'Edit'),
      h('button', { type: 'button', class: 'ghost small danger-text', dataset: { role: 'delete' }, 'aria-label': `Delete ${quoted(task.title)}`, onclick: () => openDelete(task.id) }, 'Delete')));
  }

  function render() {
    if (dragging) return; // re-rendering would drop the card being dragged; dragend renders
    // Keep keyboard focus on the same control of the same task across re-renders (a card
    // moved with its status menu lands in another column, and the menu keeps the focus).
    const active = document.activeElement;
    const focusedCard = active?.closest?.('.card');
    const focus = focusedCard && { id: focusedCard.dataset.id, role: active.dataset.role };
    const ordered = [...tasks.values()].sort((a, b) =>
      a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1);
    for (const column of document.querySelectorAll('.column')) {
      const mine = ordered.filter((task) => task.status === column.dataset.status);
      $('.cards', column).replaceChildren(...mine.map(card));
      $('[data-count]', column).textContent = String(mine.length);
      $('.empty', column).hidden = mine.length > 0;
    }
    if (focus) {
      const again = document.querySelector(`.card[data-id="${CSS.escape(focus.id)}"]`);
      const target = again && (focus.role ? $(`[data-role="${focus.role}"]`, again) : again);
      target?.focus();
    }
  }

  // ---- changes -----------------------------------------------------------------------------

  /** What to say when a change was refused; refreshes the task when the server has a newer one. */
  function explain(err, task, what) {
    if (err.status === 412) {
      refreshTask(task.id);
      return `Someone else changed ${quoted(task.title)} first, so ${what} was not saved. The board now shows the latest version.`;
    }
    if (err.status === 404) {
      forget(task.id);
      scheduleRender();
      return `${quoted(task.title)} was deleted by someone else.`;
    }
    return err.message;
  }

  async function move(id, status) {
    const current = tasks.get(id);
    if (!current || current.status === status || !STATUS_LABEL[status]) {
      scheduleRender();
      return;
    }
    // Show the move at once and undo it if the server refuses.
    const moved = { ...current, status };
    tasks.set(id, moved);
    scheduleRender();
    try {
      await mutate('PATCH', id, { status }, current.version);
    } catch (err) {
      if (tasks.get(id) === moved) tasks.set(id, current);
      scheduleRender();
      if (err.status !== 401) alertToast(explain(err, current, 'your move'));
    }
  }

  function endDrag() {
    dragging = false;
    for (const column of document.querySelectorAll('.column.drop-target')) column.classList.remove('drop-target');
    scheduleRender();
  }

  for (const column of document.querySelectorAll('.column')) {
    column.addEventListener('dragover', (event) => {
      if (!dragging) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'move';
      column.classList.add('drop-target');
    });
    column.addEventListener('dragleave', (event) => {
      if (!column.contains(event.relatedTarget)) column.classList.remove('drop-target');
    });
    column.addEventListener('drop', (event) => {
      event.preventDefault();
      const id = event.dataTransfer.getData('text/plain');
      endDrag();
      if (id) move(id, column.dataset.status);
    });
  }

  // Create.
  $('#new-task').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const title = form.title.value.trim();
    const error = $('#new-error');
    if (!title) {
      error.textContent = 'A task needs a title.';
      form.title.focus();
      return;
    }
    const body = { title, status: form.status.value };
    if (form.description.value.trim()) body.description = form.description.value.trim();
    if (form.assignee.value.trim()) body.assignee = form.assignee.value.trim();
    const button = $('.add-button', form);
    button.disabled = true;
    error.textContent = '';
    try {
      await mutate('POST', null, body);
      form.title.value = '';
      form.description.value = '';
      form.title.focus();
    } catch (err) {
      if (err.status !== 401) error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  $('#new-title').addEventListener('input', () => {
    $('#new-error').textContent = '';
  });

  // Edit.
  const editDialog = $('#edit-dialog');
  const editForm = $('#edit-form');

  function openEdit(id) {
    const task = tasks.get(id);
    if (!task) return;
    editing = { id, version: task.version, title: task.title };
    editForm.title.value = task.title;
    editForm.description.value = task.description ?? '';
    editForm.assignee.value = task.assignee ?? '';
    editForm.status.value = task.status;
    $('#edit-stale').hidden = true;
    $('#edit-conflict').hidden = true;
    $('#edit-error').textContent = '';
    $('#edit-save').disabled = false;
    editDialog.showModal();
    editForm.title.focus();
  }

  /** Warns in an open edit dialog when someone else changes or deletes that task meanwhile. */
  function noticeEditConflict(type, task, key) {
    // While our own save is on its way, its event may arrive before the answer does.
    if (!editing || editing.saving || editing.id !== task.id || !editDialog.open) return;
    if (type === 'task_deleted') {
      $('#edit-stale').hidden = false;
      $('#edit-stale').textContent = 'This task has just been deleted by someone else.';
      $('#edit-save').disabled = true;
    } else if (task.version > editing.version && !own.has(key)) {
      $('#edit-stale').hidden = false;
      $('#edit-stale').textContent = 'Someone else has changed this task since you opened it.';
    }
  }

  function closeEdit() {
    const id = editing?.id;
    editing = null;
    editDialog.close();
    const again = id && document.querySelector(`.card[data-id="${CSS.escape(id)}"] [data-role="edit"]`);
    if (again) again.focus();
  }

  $('#edit-cancel').addEventListener('click', closeEdit);
  editDialog.addEventListener('cancel', (event) => {
    event.preventDefault();
    closeEdit();
  });

  editForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!editing) return;
    const target = editing;
    const title = editForm.title.value.trim();
    if (!title) {
      $('#edit-error').textContent = 'A task needs a title.';
      editForm.title.focus();
      return;
    }
    const body = {
      title,
      description: editForm.description.value,
      assignee: editForm.assignee.value.trim() || null,
      status: editForm.status.value,
    };
    $('#edit-save').disabled = true;
    $('#edit-error').textContent = '';
    target.saving = true;
    try {
      await mutate('PATCH', target.id, body, target.version);
      if (editing === target) closeEdit();
    } catch (err) {
      target.saving = false;
      if (editing !== target) return;
      if (err.status === 412) {
        // Keep what the user typed, but from now on based on the server's latest version, so
        // saving again is a deliberate overwrite and Cancel keeps the other person's change.
        const latest = await refreshTask(target.id);
        const conflict = $('#edit-conflict');
        conflict.hidden = false;
        if (latest) {
          target.version = latest.version;
          conflict.textContent = `Conflict: someone else changed this task while you were editing it, so your changes were not saved. The board now shows their version (${quoted(latest.title)}, ${STATUS_LABEL[latest.status] ?? latest.status}). Save again to replace it with yours, or Cancel to keep theirs.`;
        } else {
          conflict.textContent = 'Conflict: this task was deleted by someone else while you were editing it.';
        }
        $('#edit-stale').hidden = true;
        $('#edit-save').disabled = !latest;
        conflict.focus();
        return;
      }
      if (err.status === 404) {
        forget(target.id);
        scheduleRender();
        $('#edit-error').textContent = 'This task was deleted by someone else.';
        return;
      }
      $('#edit-save').disabled = false;
      if (err.status === 401) {
        $('#edit-error').textContent = 'The server needs a token: enter it above, then save again.';
        return;
      }
      $('#edit-error').textContent = err.message;
      const field = err.field && editForm.elements.namedItem(err.field);
      if (field) field.focus();
    }
  });

  // Delete.
  const deleteDialog = $('#delete-dialog');

  function openDelete(id) {
    const task = tasks.get(id);
    if (!task) return;
    deleting = { id, version: task.version, title: task.title };
    $('#delete-text').textContent = `${quoted(task.title)} will be removed for everyone.`;
    $('#delete-error').textContent = '';
    $('#delete-confirm').disabled = false;
    deleteDialog.showModal();
    $('#delete-cancel').focus();
  }

  function closeDelete() {
    deleting = null;
    deleteDialog.close();
  }

  $('#delete-cancel').addEventListener('click', closeDelete);
  deleteDialog.addEventListener('cancel', (event) => {
    event.preventDefault();
    closeDelete();
  });
  $('#delete-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!deleting) return;
    const target = deleting;
    $('#delete-confirm').disabled = true;
    try {
      await mutate('DELETE', target.id, undefined, target.version);
      if (deleting === target) closeDelete();
      $('#board').focus();
    } catch (err) {
      if (deleting !== target) return;
      $('#delete-error').textContent = err.status === 401
        ? 'The server needs a token: enter it above, then try again.'
        : explain(err, target, 'the deletion');
      $('#delete-confirm').disabled = err.status === 404 || err.status === 412;
    }
  });

  // ---- start -------------------------------------------------------------------------------

  hideAuth();
  render();
  openStream();
})();
