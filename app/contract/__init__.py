"""The contract shared by the exporter and the server: the manifest, the graph's axis names, the
items a model runs on and file checksums. Imports nothing else of app, so every side may import it."""
