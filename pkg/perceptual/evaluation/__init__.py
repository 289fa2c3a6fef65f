"""Evaluation: how outputs are measured, never how they are made.

PSNR and SSIM on the Y channel as the SR literature computes them (:mod:`metrics`), the learned
similarities LPIPS and DISTS where their weights exist (:mod:`similarity`), and the measures of
detail, texture and colour behind the claims (:mod:`detail`). Imports the layers below it.
"""
