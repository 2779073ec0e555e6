"""The problems a command reports as one line on stderr with exit code 2; anything else keeps its traceback."""


class CliError(Exception):
    """An expected problem, shown as one line on stderr with exit code 2."""


def one_line(exc: Exception) -> str | None:
    """What `imageflow: ...` says about `exc`, or None when it is a bug."""
    if isinstance(exc, CliError):
        return str(exc)
    # Imported only after a command failed, so that `--help` and parsing stay on the standard library.
    import botocore.exceptions

    from imageflow_dagster.resources.dynamodb import TableError
    from imageflow_dagster.resources.s3 import StorageError
    from imageflow_dagster.settings import SettingError

    if isinstance(exc, SettingError):
        return str(exc)  # names the variable and its value
    if isinstance(exc, (TableError, StorageError)):
        return f"{exc} (run `imageflow bootstrap` to create tables and bucket)"
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return f"cannot reach AWS at {exc.kwargs.get('endpoint_url')}: connection refused"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile"
    return None
