"""Built-in backends, each a plugin registered exactly like a third party's."""
