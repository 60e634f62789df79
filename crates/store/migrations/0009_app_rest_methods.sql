-- Web Call Server applications (issue 12, reference 004): which hooks an app's backend
-- gets, as WCS's per-app REST method list. A comma list of method and event names
-- (`connect,call,CallStatusEvent`); '' = none; NULL = every method.
ALTER TABLE apps ADD COLUMN rest_methods TEXT;
