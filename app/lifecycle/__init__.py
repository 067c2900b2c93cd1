"""Model lifecycle: the registry of served models, loading, loads and unloads at runtime, /v1/models."""
