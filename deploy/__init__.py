"""How to run the product locally: the infrastructure it needs and a supervisor for its services."""
