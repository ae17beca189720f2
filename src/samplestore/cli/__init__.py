"""The ``samplestore`` command-line interface."""
