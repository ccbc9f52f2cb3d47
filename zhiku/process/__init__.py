"""Process entry points: the one bootstrap and the servers each ``zhiku`` command runs."""
