"""Commands that read or write the project's own configuration (settings, the pinned base image)."""
