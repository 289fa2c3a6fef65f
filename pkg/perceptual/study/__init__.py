"""The study: this reproduction, as distinct from the method it reproduces.

Profiles (the sizes of a run, as tables; :mod:`profiles`), one runner module per chapter
(:mod:`chapters`; :mod:`experiments` is its old name), the claims and the rules that judge them
(:mod:`claims`), training jobs across GPUs or Slurm (:mod:`jobs`), the speed bench (:mod:`bench`),
cost estimates (:mod:`estimate`) and the published results (:mod:`published`).
"""
