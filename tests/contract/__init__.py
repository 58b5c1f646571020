"""Contract suites: one behavioural suite run against every implementation of an interface."""
