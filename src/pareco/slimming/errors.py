"""The one error ``pareco.slim`` raises."""

from pareco.errors import ParecoError


class SlimError(ParecoError, ValueError):
    """A model that pareco cannot make slimmable, with what to do about it."""
