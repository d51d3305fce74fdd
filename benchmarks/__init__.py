"""keepwell's benchmarks: scripts that print numbers; see ``benchmarks/README.md``.

Nothing here is imported by the package or asserted by the test suite.
"""
