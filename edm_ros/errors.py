"""The errors edm_ros raises. Callers catch :class:`EDMError`; ``except ValueError`` also works for
bad input and configuration."""


class EDMError(Exception):
    """Base class of every error edm_ros raises on purpose."""


class InputError(EDMError, ValueError):
    """An image, array or message that the matcher cannot use (wrong dtype, size, NaN, ...)."""


class ConfigError(EDMError, ValueError):
    """An invalid configuration or parameter value."""


class CheckpointError(EDMError):
    """A weights file that cannot be read or does not hold EDM weights."""


class BackendError(EDMError, RuntimeError):
    """An inference backend that is missing or cannot run here."""
