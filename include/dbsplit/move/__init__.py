"""Data movement: extract from the source, transform, load into the target."""
