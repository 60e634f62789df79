-- Web Call Server applications (issue 12, reference 004): an app's `appKey` is its
-- client id, and its REST URL is where the WCS hooks (`<url>/connect`, `<url>/call`,
-- `<url>/CallStatusEvent`, ...) are POSTed. NULL: the app has no hooks.
ALTER TABLE apps ADD COLUMN rest_url TEXT;
