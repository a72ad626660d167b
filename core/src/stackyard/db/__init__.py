"""The database capability: what a `Database` resource declares, made real.

- `options`: the driver settings (pool, timeouts, read and write concerns, TLS) of a Database;
- `indexes` and `schema`: declared indexes compared with the server's and kept in step, and
  the collections and indexes of every stackyard capability, declared once;
- `migrations`: versioned scripts run once under a lock, with their history;
- `backup`: streamed backups in mongodump's layout, retention and restore;
- `probe`: the server's version, topology and round trip, or why it cannot be reached.
"""
