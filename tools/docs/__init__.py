"""Generated pages of the documentation site (docs/): written by these modules, checked by tests/docs."""
