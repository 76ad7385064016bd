"""zfnet against PyTorch on the same machine, in the same run (not part of the test suite)."""
