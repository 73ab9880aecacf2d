-- The expert who took a conversation (their Webex email, or person id): while set, only
-- their thread replies reach the customer.
ALTER TABLE conversations ADD COLUMN assignee TEXT;
ALTER TABLE conversations ADD COLUMN assigned_at INTEGER;
