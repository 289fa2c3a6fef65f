"""Base: what every other layer stands on, and nothing of the paper's method.

One :mod:`paths` module (no absolute paths, none relative to the working directory), the frozen
configuration dataclasses whose defaults name their source (:mod:`config`), atomic writes and
provenance (:mod:`store`), image reading and writing (:mod:`images`), MATLAB's bicubic resize
(:mod:`resize`), colour spaces (:mod:`colour`), the dataset registry with verified, resumable
downloads (:mod:`data`) and the embedded demo images (:mod:`demo`). Imports nothing above it.
"""
