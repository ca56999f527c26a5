"""One module per gate: what it gathers from the run and how it judges it."""
