"""Reference data every room shares: the phase library and crystal structures."""
