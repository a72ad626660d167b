"""Search: typo-tolerant, faceted, instant search over documents synced from MongoDB or pushed
through the API (the SearchIndex kind), on a tantivy inverted index."""
