"""osception: a real multi-node OpenStack on top of an existing OpenStack cloud."""

__version__ = "0.1.0"
