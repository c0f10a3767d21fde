"""Labels and colours of strategies, architectures and metrics: one set for every figure and table.

Figures 1-15 (mfcbench/figures/paper.py, mfcbench/figures/visualise.py) read their names from here,
so a strategy is called the same everywhere (the paper's own names: SGD, Multiscale-SGD,
Full-Multiscale-SGD) and keeps its colour and line style from figure to figure.
"""

from __future__ import annotations

STRATEGY_LABELS = {"sgd": "SGD", "msgd": "Multiscale-SGD", "fmsgd": "Full-Multiscale-SGD"}
STRATEGY_COLORS = {"sgd": "#1f77b4", "msgd": "#ff7f0e", "fmsgd": "#2ca02c"}
STRATEGY_STYLES = {"sgd": "-", "msgd": "--", "fmsgd": "-."}  # lines that coincide stay visible
# one label per network: two networks never share a label (a figure may show both)
ARCH_LABELS = {"unet": "UNet", "resnet": "ResNet", "mfc_unet": "MFC-UNet", "mfc_resnet": "MFC-ResNet",
               "unet5": "UNet5", "mfc_unet5": "MFC-UNet5",
               "espcn": "ESPCN", "srresnet": "SRResNet", "mfc_espcn": "MFC-ESPCN", "mfc_srresnet": "MFC-SRResNet",
               "fno_espcn": "FNO-ESPCN", "resnet18": "ResNet-18", "mfc_resnet18": "MFC-ResNet-18",
               "resnet50": "ResNet-50", "mfc_resnet50": "MFC-ResNet-50",
               "blur_conv": "standard convolution", "conv": "standard convolution",
               "blur_mfc": "mesh-free convolution (MFC)", "mfc": "mesh-free convolution (MFC)"}
METRIC_LABELS = {"mse": "MSE", "ssim": "SSIM"}
# the task's headline metric, which the curves' val_metric column holds (mfcbench.tasks.*.headline_metric)
TASK_METRIC = {"denoise": "validation MSE", "blur": "validation loss", "superres": "validation SSIM"}


def strategy_label(name: str) -> str:
    return STRATEGY_LABELS.get(name, name)


def arch_label(name: str) -> str:
    return ARCH_LABELS.get(name, name)
