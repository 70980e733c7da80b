"""The course as a website: ``python -m course_lib site build [--preset smoke|cpu|gpu] [--out _site]``.

The lessons (``notebooks/NN_*.ipynb``) are executed in the chosen preset with the shipped weights
(:mod:`~course_lib.workshop.site.cache`, which re-runs only lessons whose notebook or code changed,
in kernels without widgets, so sliders draw static figures), laid out with the
course's pages and an API reference (:mod:`~course_lib.workshop.site.source_tree`,
:mod:`~course_lib.workshop.site.links`), and built by Sphinx with myst-nb and sphinx-book-theme
(:mod:`~course_lib.workshop.site.sphinx_run`) into a folder swapped in only when complete
(:mod:`~course_lib.workshop.site.output`). Nothing on the pages is loaded from the network.
"""
from course_lib.workshop.site.build import SiteError, build_site

__all__ = ["SiteError", "build_site"]
