"""The ``mvd`` command line: thin front doors over the library."""
