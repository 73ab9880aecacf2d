-- What administrators and experts did that changes or reveals a customer's data: close,
-- retry, transfer, export, erase. Who (`admin:<ICB_ADMIN_NAME>`, `cli:<user>`,
-- `expert:<Webex identity>`), what, about what (a conversation, a delivery, a masked number)
-- and when.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (at);
