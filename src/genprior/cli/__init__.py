"""The command-line interface: the only layer that prints, parses and draws progress bars."""
