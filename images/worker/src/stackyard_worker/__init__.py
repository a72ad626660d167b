"""stackyard-worker: queue consumers and the scheduler."""
