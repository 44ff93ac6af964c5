"""Which projects a change touches (pure) and the workflows (steps) that plan and apply them."""
