"""Course machinery."""
