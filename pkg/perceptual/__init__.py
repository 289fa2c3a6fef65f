"""perceptual — a reproducibility study of Johnson, Alahi & Fei-Fei (ECCV 2016)."""
__version__ = "0.1.0"
