-- The dispatcher claims the next few rows still to send, in due order, and asks when the next
-- one is due. Through `notifications_due` both meant reading and sorting every open row, and
-- the claim holds the writer while it does: with a large backlog (a receiver down for an hour)
-- every claim slowed the requests queued behind it. These indexes hold only the open rows and
-- the leased ones, so both queries read a handful of rows however long the backlog is.
CREATE INDEX notifications_open_due ON notifications (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX notifications_leased ON notifications (lease_until)
    WHERE lease_until IS NOT NULL;
