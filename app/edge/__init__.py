"""The HTTP edge before the routes: the serving middleware, whole bodies, the in-flight cap, methods."""
