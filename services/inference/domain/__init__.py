"""The inference service's rules as plain Python: the system prompt a model is given, what a model
call produced and cost, and how an answer is served (which cache modes read and write the cache)."""
