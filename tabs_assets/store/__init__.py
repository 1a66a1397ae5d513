"""The content-addressed store of results: entries written atomically and verified on read, one
lock per key, gc."""
