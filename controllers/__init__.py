"""Business logic: plain arguments in, plain data out, domain errors raised."""
