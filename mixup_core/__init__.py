"""mixup_core: a paper-faithful, fast MixUp training library.

Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization",
ICLR 2018. Mixing happens on whole batches on the training device; the
dataset lives there as one tensor. This package knows torch, torchvision,
numpy and scikit-learn only — never a tracker, a tuner or a web framework.
"""

from __future__ import annotations

from mixup_core import metrics
from mixup_core.config import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    MixupConfig,
    ModelConfig,
    SyntheticConfig,
    TrainConfig,
)
from mixup_core.data import DATASET_NAMES, DatasetInfo, LoadedDataset, dataset_info, load_dataset, random_crop_flip
from mixup_core.errors import DatasetNotFound, InvalidConfig, MixupCoreError, TrainingDiverged
from mixup_core.lam import sample_lambda
from mixup_core.losses import closest_labels, mixed_cross_entropy, soft_targets, weighted_correct
from mixup_core.manifold import HiddenMixer, mix_tensor
from mixup_core.mixer import MixedBatch, Mixer
from mixup_core.models import MODEL_NAMES, build_model, mix_points
from mixup_core.pairing import KnnPartners, random_partners, same_class_partners
from mixup_core.trainer import Trainer, TrainResult, resolve_device

__all__ = [
    "DATASET_NAMES",
    "MODEL_NAMES",
    "DataConfig",
    "DatasetInfo",
    "DatasetNotFound",
    "EvalConfig",
    "ExperimentConfig",
    "HiddenMixer",
    "InvalidConfig",
    "KnnPartners",
    "LoadedDataset",
    "MixedBatch",
    "Mixer",
    "MixupConfig",
    "MixupCoreError",
    "ModelConfig",
    "SyntheticConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "build_model",
    "closest_labels",
    "dataset_info",
    "load_dataset",
    "metrics",
    "mix_points",
    "mix_tensor",
    "mixed_cross_entropy",
    "random_crop_flip",
    "random_partners",
    "resolve_device",
    "same_class_partners",
    "sample_lambda",
    "soft_targets",
    "weighted_correct",
]
