"""Benchmarks: ``python -m course_lib bench image|video|sampling|prediction|training|all|quality`` (see ``__main__``)."""
