-- An attempt's number within its delivery (1 for its first attempt, whatever made it), written with the
-- attempt: pruning older attempts renumbers nothing, and the newest attempt's number is the delivery's count.
ALTER TABLE delivery_attempts ADD COLUMN attempt_number BIGINT NOT NULL DEFAULT 0;
-- Attempts already logged: counted back from their delivery's count (older ones may have been pruned).
UPDATE delivery_attempts a SET attempt_number = GREATEST(1,
    COALESCE((SELECT d.attempts FROM deliveries d WHERE d.id = a.delivery_id), 0)
    - (SELECT COUNT(*) FROM delivery_attempts b WHERE b.delivery_id = a.delivery_id AND b.seq > a.seq));
