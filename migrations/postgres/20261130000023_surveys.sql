-- The rating asked of a customer once their conversation is closed (ICB_SURVEY). Who was
-- asked is the conversation's customer: the number is not copied here, so erasing or
-- anonymising the conversation leaves nothing of it behind. `answer_message_id` is the
-- message that answered (its repeats are answered as before, not taken for new messages).
CREATE TABLE surveys (
    conversation_id   TEXT PRIMARY KEY REFERENCES conversations (id),
    asked_at          BIGINT NOT NULL,
    answered_at       BIGINT,
    rating            BIGINT CHECK (rating BETWEEN 1 AND 5),
    answer_message_id BIGINT REFERENCES messages (id)
);
-- A customer's message is checked against the few surveys still waiting for an answer.
CREATE INDEX surveys_unanswered ON surveys (asked_at) WHERE answered_at IS NULL;
-- The admin API lists ratings, newest first.
CREATE INDEX surveys_answered ON surveys (answered_at) WHERE answered_at IS NOT NULL;
