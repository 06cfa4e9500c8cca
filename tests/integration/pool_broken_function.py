"""A handler module that cannot be imported (its configuration is missing), for the process pool's tests."""

raise RuntimeError("this function's configuration is missing")
