"""A training loop stopped with Ctrl-C."""

raise KeyboardInterrupt
