"""Use cases that wire the parts together: runs, nightly, probe, catalog, and the process-wide tuning."""
