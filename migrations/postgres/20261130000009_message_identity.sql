-- A message is identified by its sender's id and its sender and business address (see
-- migrations/sqlite).
DROP INDEX messages_once;
CREATE UNIQUE INDEX messages_once ON messages (channel, customer, business, external_id)
    WHERE external_id IS NOT NULL;
