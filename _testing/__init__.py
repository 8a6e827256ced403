"""The implementation of `tether.testing`; import from there."""
