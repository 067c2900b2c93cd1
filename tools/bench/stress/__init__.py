"""`make stress`: the real server under soak, overload, SIGTERM, disconnects, faults, generated requests."""
