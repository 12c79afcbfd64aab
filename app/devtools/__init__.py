"""Tools for trying the platform on a laptop: demo accounts, local channel fakes, operator checks."""
