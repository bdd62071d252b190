"""The one error ``pareco.slim`` raises."""


class SlimError(ValueError):
    """A model that pareco cannot make slimmable, with what to do about it."""
