-- The desk a conversation belongs to (`[[desk]]` name), chosen when it opens; NULL for
-- conversations opened before desks: they belong to the default desk.
ALTER TABLE conversations ADD COLUMN desk TEXT;
