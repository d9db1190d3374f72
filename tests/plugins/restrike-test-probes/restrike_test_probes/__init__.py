"""Test plugins for restrike, loaded through the ``restrike`` entry-point group."""
