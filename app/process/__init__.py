"""Process tuning: the heap trim, the worker threads and their OS names, event-loop lag, the GC freeze."""
