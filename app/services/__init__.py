"""Services change domain objects and flush; the request handler commits once."""
