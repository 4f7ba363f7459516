"""Circuit builders: wire the models into key-query-value tripartite networks."""
