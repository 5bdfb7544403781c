"""The trainer's exceptions, importable by every module without import cycles."""


class ConfigError(ValueError):
    """A config value is invalid; the message names the field, the value and what is allowed."""
