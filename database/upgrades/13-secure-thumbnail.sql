-- v12 -> v13: Secure chat photos keep a small sealed preview and their size

-- The chat page shows the preview (a JPEG of at most 640 px, sealed like the file) and
-- loads the original only when the patient taps it; width and height (of what the page
-- shows, 0 when unknown) let the page keep the photo's place before it loads.
ALTER TABLE secure_message ADD COLUMN thumb BYTEA;
ALTER TABLE secure_message ADD COLUMN width INTEGER NOT NULL DEFAULT 0;
ALTER TABLE secure_message ADD COLUMN height INTEGER NOT NULL DEFAULT 0;
