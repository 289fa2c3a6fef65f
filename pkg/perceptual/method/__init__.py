"""The paper's method, readable on its own: what Johnson, Alahi & Fei-Fei describe.

Loss networks (:mod:`vgg`), the losses as pure functions of feature dicts citing the paper's
equations (:mod:`losses`) and their weighted sum, Eq. 5 (:mod:`objective`), the transformation
networks (:mod:`transformer`), SRCNN's published weights (:mod:`srcnn`), Gatys et al.'s L-BFGS
baseline and feature/style inversion (:mod:`gatys`), the training procedure for style transfer
(:mod:`train`) and super-resolution (:mod:`superres`), and the memory a run will need
(:mod:`memory`). A researcher trying a new loss reads ``vgg``, ``losses``, ``objective`` and
``train``. Imports :mod:`perceptual.core` and :mod:`perceptual.runtime`.
"""
