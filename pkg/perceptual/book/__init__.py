"""The book: computing what a chapter needs, executing its notebook with papermill and building
the Jupyter Book (:mod:`site`), and the helpers the notebooks call — captions, image grids,
tables, the "How this page was made" box (:mod:`pages`). Reads the study's results; computes none.
"""
