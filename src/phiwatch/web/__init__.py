"""The dashboard (`phiwatch serve`): pages and a JSON API over the watcher's store, behind a token."""
