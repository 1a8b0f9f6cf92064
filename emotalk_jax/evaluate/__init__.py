"""The evaluation harness for videos (`harness`), batch manifests and plots, and one module per
metric: PSNR and
SSIM, CPBD, M-/F-LMD, CSIM, expression accuracy, lip sync, SyncNet's LSE-C/D. Never imports
TensorFlow."""
