"""The relay: token checks, channel choice, failover, metering, quota and logs."""
