"""Errors that name their cause, so an operator can act without reading a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solar_mlops.playbook_runner import PlaybookResult


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


class PlaybookFailedError(SolarMLOpsError):
    """An Ansible playbook failed. The message names the failing task, its host and the
    playbook's own reason; ``result`` holds the run (status, host recaps, artifacts)."""

    def __init__(self, message: str, result: PlaybookResult) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[PlaybookFailedError], tuple[str, PlaybookResult]]:
        # Unpickling rebuilds an exception from these arguments (e.g. in a persisted state).
        return type(self), (str(self), self.result)
