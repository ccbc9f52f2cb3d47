"""Admin services over the gateway's store: channels, tokens, users, logs, options, OneAPI import."""
