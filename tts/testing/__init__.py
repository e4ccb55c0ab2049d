"""Test support: fakes and shortcuts for tests and benchmarks. Production modules never import this package
(the import-layer contract in pyproject.toml enforces it); it may import anything."""
