-- A message is identified by its sender's id *and* its sender and business address: the
-- same id from another customer (a flow that maps a field that is not unique, two Webex
-- Connect services posting to one icbridge) is another message, never a repeat.
DROP INDEX messages_once;
CREATE UNIQUE INDEX messages_once ON messages (channel, customer, business, external_id)
    WHERE external_id IS NOT NULL;
