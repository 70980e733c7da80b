"""``python -m course_lib`` (and the ``course`` script): see :mod:`course_lib.workshop.cli`."""
import sys

from course_lib.workshop.cli import main

if __name__ == "__main__":
    sys.exit(main())
