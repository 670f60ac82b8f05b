-- Retention deletes delivered notifications by delivery time (dead ones go by
-- `notifications_due`, on status and last attempt). Without this index every pruning pass
-- would read every delivered row.
CREATE INDEX notifications_delivered ON notifications (delivered_at)
    WHERE status = 'delivered';
