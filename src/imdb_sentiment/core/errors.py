"""Errors that the CLI turns into one clear line and a non-zero exit."""


class PipelineError(Exception):
    """A user-facing failure: bad input, bad config, a failed gate. Never a bug."""


class DataError(PipelineError):
    """The dataset is missing, corrupt or does not match the expected layout."""


class ConfigError(PipelineError):
    """params.yaml or the environment holds an invalid value."""


class GateError(PipelineError):
    """A quality gate refused to promote a model."""


def first_line(exc: BaseException) -> str:
    """An exception as one line: its message's first line, or its type's name."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
