"""Group `discoveries`: write what the model learned back into the graph (filled in below)."""
