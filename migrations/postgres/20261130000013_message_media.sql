-- What a customer's message carries beside its text: the links, types and captions of its
-- pictures, documents, videos and voice notes, and a shared location, as JSON. Never the
-- files themselves. NULL for a message with text only.
ALTER TABLE messages ADD COLUMN media TEXT;
