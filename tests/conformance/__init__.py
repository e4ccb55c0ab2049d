"""Conformance with the reference implementations and papers: one module per reference (DESIGN.md, "Faithful
names"), each test's docstring citing what it mirrors (repository, file and function, or paper section)."""
