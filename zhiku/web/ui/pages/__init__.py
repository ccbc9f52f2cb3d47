"""One module per page area; each has a ``router`` that :func:`zhiku.web.ui.install_ui` includes."""
