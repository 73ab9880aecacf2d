-- Customers who opted out (STOP) of messages from a business address: icbridge sends them
-- nothing until they opt back in (START), which deletes the row.
CREATE TABLE opt_outs (
    channel      TEXT NOT NULL,
    customer     TEXT NOT NULL,
    business     TEXT NOT NULL,
    opted_out_at BIGINT NOT NULL,
    PRIMARY KEY (channel, customer, business)
);

-- Deliveries to a customer who opted out are `cancelled`: never sent, and not a failure.
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('pending', 'sent', 'dead', 'cancelled'));
