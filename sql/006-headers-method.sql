-- Migration 6: a message's own HTTP method and headers (API.md: method,
-- header/headers), written once with the rest of the immutable message.
-- headers is the stored form of lib/envelope.c: "Name: value" lines joined
-- by newlines, NULL for none. Its values are often credentials: status,
-- the list and the page show the names only.
ALTER TABLE messages ADD COLUMN method TEXT NOT NULL DEFAULT 'POST';
ALTER TABLE messages ADD COLUMN headers TEXT;
