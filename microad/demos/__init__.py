"""Walk-throughs run by ``microad demo``."""
