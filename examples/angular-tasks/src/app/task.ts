/** A task as taskwire sends it over REST and in every Socket.IO event. */
export interface Task {
  id: string;
  title: string;
  description: string;
  status: 'pending' | 'in_progress' | 'completed';
  assignee: string | null;
  assignee_email: string | null;
  due_date: string | null;
  created_at: string;
  updated_at: string;
  created_by: string | null;
  updated_by: string | null;
  version: number;
}
