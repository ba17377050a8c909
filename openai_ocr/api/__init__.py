"""The HTTP layer, the same in every mode: routes, schemas, dependencies, middleware."""
