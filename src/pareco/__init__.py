"""pareco: slimmable networks whose per-group widths are optimized together with the weights."""

__version__ = "0.1.0"
