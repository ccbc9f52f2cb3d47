"""The gateway's HTTP surface: relay routes, the OneAPI-style admin API, the standalone app."""
