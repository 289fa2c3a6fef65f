"""The runtime: what makes the method fast and its runs safe, independent of the paper's networks.

Precision policy (fp32/bf16/fp16/int8, cuDNN flags; :mod:`precision`), one training step eager,
compiled or replayed as a CUDA graph (:mod:`trainstep`), the resumable run folder (checkpoints,
lock, logs, signals; :mod:`runfolder`), the fast inference path with tiling and batch-norm folding
(:mod:`inference`), int8 residual convolutions (:mod:`quantization`) and channels-last layers
(:mod:`layers`). Imports only :mod:`perceptual.core`; the method calls into it.
"""
