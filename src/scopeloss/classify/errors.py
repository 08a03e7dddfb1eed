"""Errors of the classification data: one home, imported by the data modules and the CLI."""


class DataUnavailable(RuntimeError):
    """The dataset is not on disk, could not be fetched, or cannot be read."""


class DecodeError(DataUnavailable):
    """An image listed in the manifest cannot be decoded."""
