"""Checks a taskwire SQLite database for half-written changes, after schemathesis has thrown
its requests at the server (scripts/test-schemathesis.sh runs it once the server has stopped).

What "consistent" means comes from the store (src/store): a change, its event-log row and its
notification rows commit together in one transaction, so afterwards

- every workspace's event log is gapless: seq 1..last_seq, each once (nothing is pruned
  within the retention defaults of a short run);
- every task row has a `task_created` event (version 1, or the version an import kept) and one
  event per later version, the newest of which carries exactly the row; no task row's history
  ends in `task_deleted`, and a deleted task has no row;
- every event row holds a task of its own task_id whose version follows the previous event's;
- every task row obeys the domain rules (trimmed 1-500 character title, canonical status, ...);
- with N webhook URLs, every change made by a request has exactly N notifications of its type
  and version, and a job's changes none (a job sends N summaries instead, about the job);
  every notification is about a logged change or a job of the matching kind; no attempt or
  job-result part is left without its parent.

    consistency.py DATABASE [--webhooks N]

Exits 1 and lists every violation if any.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import defaultdict

STATUSES = {"pending", "in_progress", "completed"}
EVENT_TYPES = {"task_created": "task.created", "task_updated": "task.updated", "task_deleted": "task.deleted"}
# Unicode White_Space, what Rust's `str::trim` removes (Python's `str.strip` also removes
# U+001C-U+001F, which Rust does not count as white space).
WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
JOB_STATES = {"queued", "running", "succeeded", "failed", "cancelled", "timed_out", "interrupted"}


def check(db: str, webhooks: int) -> tuple[list[str], dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    problems: list[str] = []
    counts: dict = {}

    # The event log: gapless per workspace.
    seqs = {r["workspace"]: r["last_seq"] for r in conn.execute("SELECT workspace, last_seq FROM workspace_seqs")}
    events_by_ws: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for r in conn.execute("SELECT * FROM task_events ORDER BY workspace, seq"):
        events_by_ws[r["workspace"]].append(r)
    for ws in set(seqs) | set(events_by_ws):
        got = [r["seq"] for r in events_by_ws.get(ws, [])]
        want = list(range(1, seqs.get(ws, 0) + 1))
        if got != want:
            problems.append(f"workspace {ws!r}: event seqs {got[:5]}… (n={len(got)}) != 1..{seqs.get(ws, 0)}")
    counts["events"] = sum(len(v) for v in events_by_ws.values())

    # Each task's history, in commit order.
    history: dict[tuple[str, str], list[sqlite3.Row]] = defaultdict(list)
    for ws, rows in events_by_ws.items():
        for r in rows:
            history[(ws, r["task_id"])].append(r)
            if r["kind"] not in EVENT_TYPES:
                problems.append(f"event {ws}/{r['seq']}: unknown kind {r['kind']!r}")
    for (ws, task_id), rows in history.items():
        previous_version = 0
        for i, r in enumerate(rows):
            try:
                task = json.loads(r["task"])
            except (TypeError, ValueError):
                problems.append(f"event {ws}/{r['seq']}: task is not JSON")
                continue
            if task.get("id") != task_id:
                problems.append(f"event {ws}/{r['seq']}: task id {task.get('id')} != {task_id}")
            version = task.get("version")
            if i == 0 and r["kind"] != "task_created":
                problems.append(f"task {task_id}: history starts with {r['kind']}")
            if r["kind"] == "task_created" and (i != 0 or not isinstance(version, int) or version < 1):
                problems.append(f"task {task_id}: task_created at position {i} with version {version}")
            if r["kind"] == "task_updated" and version != previous_version + 1:
                problems.append(f"task {task_id}: update to version {version} after {previous_version}")
            if r["kind"] == "task_deleted" and (i != len(rows) - 1 or version != previous_version):
                problems.append(f"task {task_id}: task_deleted at {i}/{len(rows)} with version {version}")
            previous_version = version if isinstance(version, int) else previous_version

    tasks = list(conn.execute("SELECT * FROM tasks"))
    counts["tasks"] = len(tasks)
    live = set()
    for t in tasks:
        key = (t["workspace"], t["id"])
        live.add(key)
        rows = history.get(key, [])
        if not rows:
            problems.append(f"task {t['id']}: a row without any event")
            continue
        last = rows[-1]
        if last["kind"] == "task_deleted":
            problems.append(f"task {t['id']}: deleted in the log but still a row")
        logged = json.loads(last["task"])
        for field in ("title", "description", "status", "assignee", "assignee_email", "due_date", "version",
                      "created_by", "updated_by"):
            if logged.get(field) != t[field]:
                problems.append(f"task {t['id']}: {field} is {t[field]!r} in the row, {logged.get(field)!r} in the log")
        title = t["title"]
        if title != title.strip(WHITE_SPACE) or not title or len(title) > 500:
            problems.append(f"task {t['id']}: title {title[:40]!r}… breaks the rules")
        if t["status"] not in STATUSES:
            problems.append(f"task {t['id']}: status {t['status']!r}")
        if len(t["description"]) > 20000:
            problems.append(f"task {t['id']}: description of {len(t['description'])} characters")
        if t["assignee"] is not None and (t["assignee"] != t["assignee"].strip(WHITE_SPACE) or not t["assignee"]
                                          or len(t["assignee"]) > 200):
            problems.append(f"task {t['id']}: assignee {t['assignee'][:40]!r}")
        if t["version"] < 1 or t["created_at"] > t["updated_at"]:
            problems.append(f"task {t['id']}: version {t['version']}, {t['created_at']} > {t['updated_at']}")
    for key, rows in history.items():
        if rows[-1]["kind"] != "task_deleted" and key not in live:
            problems.append(f"task {key[1]}: in the log and not deleted, but no row")

    # Notifications: each task.* one is about a logged change (its payload carries the task and
    # its version); each change has none (a job's) or one per webhook URL.
    events = {}
    for (ws, task_id), rows in history.items():
        for r in rows:
            events[(ws, task_id, EVENT_TYPES.get(r["kind"]), json.loads(r["task"]).get("version"))] = 0
    jobs = {r["id"]: r for r in conn.execute("SELECT id, workspace, kind, state, done FROM jobs")}
    summaries: dict[str, int] = defaultdict(int)
    n = 0
    for r in conn.execute("SELECT workspace, task_id, event_type, channel, payload FROM notifications"):
        n += 1
        if r["channel"] != "webhook":
            continue
        if r["event_type"].startswith("tasks."):
            job = jobs.get(r["task_id"])
            kind = {"tasks.bulk_updated": "bulk_update", "tasks.imported": "import"}.get(r["event_type"])
            if job is None or job["kind"] != kind or job["workspace"] != r["workspace"]:
                problems.append(f"summary {r['event_type']} about {r['task_id']}, not a {kind} job")
            summaries[r["task_id"]] += 1
            continue
        try:
            version = json.loads(r["payload"])["data"]["task"]["version"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"notification about task {r['task_id']}: payload without the task")
            continue
        key = (r["workspace"], r["task_id"], r["event_type"], version)
        if key not in events:
            problems.append(f"notification {key} matches no logged change")
            continue
        events[key] += 1
    counts["notifications"] = n
    for key, got in events.items():
        if got not in (0, webhooks):
            problems.append(f"change {key}: {got} webhook notifications, expected {webhooks}")
    for job_id, got in summaries.items():
        if got != webhooks:
            problems.append(f"job {job_id}: {got} summaries, expected {webhooks}")
    # Changes without notifications are a job's: no more of them than jobs' progress counts.
    quiet = sum(1 for got in events.values() if got == 0)
    by_jobs = sum(j["done"] for j in jobs.values() if j["kind"] in ("bulk_update", "import"))
    if webhooks and quiet > by_jobs:
        problems.append(f"{quiet} changes without notifications, but jobs made at most {by_jobs}")
    orphans = conn.execute(
        "SELECT COUNT(*) FROM notification_attempts a LEFT JOIN notifications n ON n.id = a.notification_id "
        "WHERE n.id IS NULL").fetchone()[0]
    if orphans:
        problems.append(f"{orphans} notification attempts without their notification")

    # Jobs and their result files.
    counts["jobs"] = len(jobs)
    for j in jobs.values():
        if j["state"] not in JOB_STATES:
            problems.append(f"job {j['id']}: state {j['state']!r}")
    orphans = conn.execute(
        "SELECT COUNT(*) FROM job_results p LEFT JOIN jobs j ON j.id = p.job_id WHERE j.id IS NULL").fetchone()[0]
    if orphans:
        problems.append(f"{orphans} job result parts without their job")
    for r in conn.execute(
        "SELECT j.id, j.result_size, SUM(LENGTH(p.bytes)) AS stored FROM jobs j JOIN job_results p ON p.job_id = j.id "
        "WHERE j.state = 'succeeded' AND j.result_size IS NOT NULL GROUP BY j.id"):
        if r["stored"] != r["result_size"]:
            problems.append(f"job {r['id']}: result_size {r['result_size']} but {r['stored']} bytes stored")
    conn.close()
    return problems, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database")
    parser.add_argument("--webhooks", type=int, default=0, help="how many WEBHOOK_URLs the server had")
    args = parser.parse_args()
    problems, counts = check(args.database, args.webhooks)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    if problems:
        print(f"consistency: {len(problems)} problems ({summary})", file=sys.stderr)
        for p in problems[:200]:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"consistency: ok ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
