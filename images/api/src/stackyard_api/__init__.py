"""stackyard-api: the HTTP API over the core library."""
