"""Errors that name their cause, so an operator can act without reading a traceback."""


class SolarMLOpsError(Exception):
    """Base class: every expected failure of the package derives from it."""


class DataPackageMissingError(SolarMLOpsError):
    """The measured data ships inside the pvanalytics wheel and it is not installed."""


class DataValidationError(SolarMLOpsError):
    """A frame is empty, corrupt, or lacks what a step needs."""


class SchemaMismatchError(SolarMLOpsError):
    """A model was trained on features that the running code no longer produces."""


class RegistryError(SolarMLOpsError):
    """The model registry lacks what was asked for, or refused a change."""
