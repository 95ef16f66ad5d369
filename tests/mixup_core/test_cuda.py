"""mixup_core's key properties on every device there is: the CPU always, CUDA where present (marked ``gpu``).

The same assertions as the CPU-only suites, run with tensors, generators and
models on the device, so a kernel that behaves differently on the GPU (a
gather, a lerp, a sort, an autocast rule) shows up here. The CUDA-only tests at
the end check what only a GPU has: bf16 autocast against fp32, and a training
step that never waits for the device.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixup_core import (
    DataConfig,
    ExperimentConfig,
    HiddenMixer,
    MixupConfig,
    ModelConfig,
    SyntheticConfig,
    TrainConfig,
    Trainer,
    build_model,
    metrics,
    mix_tensor,
    mixed_cross_entropy,
    resolve_device,
    same_class_partners,
    sample_lambda,
    soft_targets,
)
from mixup_core.batches import BatchSource
from mixup_core.data import images_dataset, load_dataset
from mixup_core.divergence import DivergenceWatch
from mixup_core.errors import TrainingDiverged
from mixup_core.mixer import Mixer

HAS_CUDA = torch.cuda.is_available()
CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here")], id="cuda"
)
DEVICES = [pytest.param("cpu", id="cpu"), CUDA]

#: bf16 against fp32 on the same seed (test_bf16_run_matches_fp32): the final test error may differ by this
#: many points, and each epoch's mean training loss by this relative amount.
BF16_TEST_ERROR_POINTS = 2.0
BF16_TRAIN_LOSS_REL = 0.10


def gen(device: str, seed: int = 0) -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """No TF32 in convolutions or matmuls: compare two float32 computations at float32 precision."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def synthetic(**overrides: object) -> ExperimentConfig:
    base = ExperimentConfig(
        dataset=DataConfig(name="synthetic", synthetic=SyntheticConfig(num_train=512, num_test=256, num_classes=4)),
        model=ModelConfig(name="mlp"),
        mixup=MixupConfig(alpha=1.0),
        training=TrainConfig(epochs=2, batch_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0, device="cpu"),
    )
    return base.with_overrides(dict(overrides)) if overrides else base


# -- losses and mixing --------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("per_sample", "eps"), [(False, 0.0), (True, 0.0), (False, 0.1), (True, 0.2)])
def test_index_form_loss_equals_soft_target_cross_entropy(device: str, per_sample: bool, eps: float) -> None:
    g = gen(device, 3)
    b, c = 37, 10
    logits = torch.randn(b, c, generator=g, device=device) * 3
    y_a = torch.randint(0, c, (b,), generator=g, device=device)
    y_b = torch.randint(0, c, (b,), generator=g, device=device)
    lam = torch.rand(b, generator=g, device=device) if per_sample else 0.3
    reference = F.cross_entropy(logits, soft_targets(y_a, y_b, lam, c, eps))
    ours = mixed_cross_entropy(logits, y_a, y_b, lam, eps)
    assert ours.device.type == device
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-5)
    # bf16 logits (what autocast hands over): the loss is still computed in float32.
    half = mixed_cross_entropy(logits.bfloat16(), y_a, y_b, lam, eps)
    assert half.dtype == torch.float32
    assert torch.allclose(half, reference, rtol=2e-2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_per_sample_mixing_equals_the_hand_computation(device: str, channels_last: bool) -> None:
    g = gen(device, 1)
    x = torch.randn(16, 3, 8, 8, generator=g, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (16,), generator=g, device=device)
    mixer = Mixer(MixupConfig(alpha=0.4, lam_per="sample"), gen(device, 4), gen("cpu", 5))
    batch = mixer(x, y)
    # Replay the draws: λ from the CPU generator, the partners from the device one.
    lam = sample_lambda(0.4, 16, gen("cpu", 5)).float().to(device)
    perm = torch.randperm(16, generator=gen(device, 4), device=device)
    expected = lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm]
    assert isinstance(batch.lam, torch.Tensor) and batch.lam.device.type == device
    assert torch.allclose(batch.lam, lam)
    assert torch.allclose(batch.x, expected, atol=1e-6)
    assert torch.equal(batch.y_b, y[perm])
    assert batch.x.is_contiguous(memory_format=torch.channels_last) == channels_last
    # The batch-λ form through mix_tensor: λ·x + (1 − λ)·x[perm].
    assert torch.allclose(mix_tensor(x, perm, 0.25), 0.25 * x + 0.75 * x[perm], atol=1e-6)


@functools.cache
def preact_resnet18(device: str) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="preact_resnet18"), (3, 32, 32), 10)
    return model.to(device).eval()  # eval: batch norm uses running stats, so a split forward is comparable


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("per_sample", [False, True])
def test_layer1_mixing_of_preact_resnet18_equals_a_manual_split_forward(device: str, per_sample: bool) -> None:
    model = preact_resnet18(device)
    g = gen(device, 1)
    x = torch.randn(6, 3, 32, 32, generator=g, device=device)
    perm = torch.randperm(6, generator=g, device=device)
    lam = torch.rand(6, generator=g, device=device) if per_sample else 0.37
    hook = HiddenMixer(model, "layer1")
    try:
        with torch.no_grad(), full_fp32():
            hook.arm(perm, lam)
            hooked = model(x)
            h = model.stem(x)  # the paper's "Layer 1": the stem's output
            w = lam.view(-1, 1, 1, 1) if isinstance(lam, torch.Tensor) else lam
            h = w * h + (1 - w) * h[perm]
            for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
                h = stage(h)
            manual = model.fc(model.flatten(model.pool(model.final(h))))
            unmixed = model(x)
    finally:
        hook.remove()
    assert torch.allclose(hooked, manual, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(hooked, unmixed, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_same_class_partners_share_the_class(device: str) -> None:
    y = torch.randint(0, 7, (301,), generator=gen("cpu", 2)).to(device)
    y[-1] = 9  # a class of one: paired with itself
    partners = same_class_partners(y, gen(device, 3))
    assert partners.device.type == device
    assert torch.equal(y[partners], y)
    assert sorted(partners.tolist()) == list(range(301))
    alone = torch.bincount(y)[y] == 1
    assert torch.equal(partners == torch.arange(301, device=device), alone)
    batch = Mixer(MixupConfig(alpha=1.0, scope="same_class"), gen(device, 4), gen("cpu", 5))(y.float()[:, None], y)
    assert torch.equal(batch.y_b, batch.y_a)


# -- determinism -------------------------------------------------------------------------------


def mixed_batches(device: str, seed: int, steps: int = 3) -> list[torch.Tensor]:
    shape = SyntheticConfig(num_train=96, num_test=8, shape=(3, 8, 8))
    config = DataConfig(name="synthetic", synthetic=shape, augment=True)  # crops and flips too
    data = load_dataset(config, device)
    source = BatchSource(data, 32, gen(device, seed), channels_last=True)
    mixer = Mixer(MixupConfig(alpha=1.0, lam_per="sample"), source.generator, gen("cpu", seed + 1))
    out = []
    for _, clean in zip(range(steps), source, strict=False):
        batch = mixer(clean.x, clean.y)
        out += [batch.x, batch.y_b]
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_a_seed_fixes_batches_crops_lambda_and_partners(device: str) -> None:
    a, b, other = mixed_batches(device, 7), mixed_batches(device, 7), mixed_batches(device, 8)
    assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    assert not all(torch.equal(s, t) for s, t in zip(a, other, strict=True))


@pytest.mark.parametrize("device", DEVICES)
def test_a_seed_fixes_a_training_run(device: str) -> None:
    cfg = synthetic(**{"training.device": device})
    first, second = Trainer(cfg).fit(), Trainer(cfg).fit()
    keys = [metrics.TRAIN_LOSS, metrics.TRAIN_ERROR, metrics.TEST_LOSS, metrics.TEST_ERROR]
    for a, b in zip(first.history, second.history, strict=True):
        if device == "cpu":
            assert [a[k] for k in keys] == [b[k] for k in keys]
        else:  # same draws and data; only float reduction order may differ between runs on a GPU
            assert [a[k] for k in keys] == pytest.approx([b[k] for k in keys], rel=1e-4, abs=1e-4)


# -- the device the trainer picks, divergence ---------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_resolved_cuda_device_carries_its_index(device: str) -> None:
    resolved = resolve_device(device)
    assert resolved.type == device
    assert resolved.index == (torch.cuda.current_device() if device == "cuda" else None)
    assert resolve_device("auto") == resolve_device("cuda" if HAS_CUDA else "cpu")


@pytest.mark.slow  # a fresh interpreter imports torch
def test_auto_device_inside_a_cpu_only_ray_trial_is_the_cpu() -> None:
    # Ray hides every GPU from a trial without one: CUDA_VISIBLE_DEVICES="".
    code = "from mixup_core import resolve_device; print(resolve_device('auto'))"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "cpu"


@pytest.mark.parametrize("visible", ["0", None], ids=["ray-gpu-trial", "inherited"])
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here")
def test_auto_device_with_a_visible_gpu_is_cuda_0(visible: str | None) -> None:
    # A (fractional) GPU trial: Ray sets CUDA_VISIBLE_DEVICES to its GPU, renumbered as device 0.
    code = "from mixup_core import resolve_device; print(resolve_device('auto'), resolve_device('cuda'))"
    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": visible} if visible is not None else {})}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split() == ["cuda:0", "cuda:0"]


@pytest.mark.parametrize("device", DEVICES)
def test_divergence_watch_reads_the_running_loss_without_waiting(device: str) -> None:
    watch = DivergenceWatch(torch.device(device))
    running = torch.full((), 3.5, device=device)
    seen = watch.poll(running, step=49)
    if device == "cpu":
        assert seen == (3.5, 49)
    else:
        assert seen is None  # the copy has only been queued
        running += float("nan")
        torch.cuda.synchronize()
        assert watch.poll(running, step=99) == (3.5, 49)  # the earlier copy, now landed
        torch.cuda.synchronize()
        value, step = watch.poll(running, step=149) or (0.0, 0)
        assert step == 99 and math.isnan(value)  # copied at step 99
    watch.reset()


@pytest.mark.parametrize("device", DEVICES)
def test_a_diverging_run_stops_with_a_clear_error(device: str) -> None:
    cfg = synthetic(
        **{"training.device": device, "training.optimizer": "sgd", "training.lr": 1e12, "training.epochs": 20}
    )
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) in epoch \d+"):
        Trainer(cfg).fit()


# -- CUDA only ----------------------------------------------------------------------------------


def gratings(n: int, seed: int, noise: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, 32, 32) uint8 sine gratings, 10 classes (5 orientations × 2 wavelengths), random phase, noisy.

    A CNN learns them in a few epochs (unlike Gaussian clusters in pixel space, which global pooling hides);
    the noise keeps the test error off zero for a while so that two runs can be compared by it.
    """
    g = np.random.default_rng(seed)
    y = g.integers(0, 10, n)
    angle = ((y % 5) * math.pi / 5)[:, None, None]
    k = (2 * math.pi / np.where(y < 5, 8.0, 4.0))[:, None, None]  # wavelengths of 8 and 4 pixels
    phase = g.uniform(0, 2 * math.pi, n)[:, None, None]
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    wave = np.sin(k * (np.cos(angle) * cols + np.sin(angle) * rows) + phase)  # (n, 32, 32)
    pixels = 128 + 60 * wave[:, None] + noise * g.standard_normal((n, 3, 32, 32))
    return np.clip(pixels, 0, 255).astype(np.uint8), y


def image_run(amp: bool) -> list[dict[str, float]]:
    # No crop/flip: a flip turns one orientation class into another.
    data = images_dataset(gratings(2048, 0), gratings(1024, 1), 10, (0.5,) * 3, (0.25,) * 3, "cuda", augment=False)
    cfg = ExperimentConfig(
        dataset=DataConfig(name="cifar10", download=False),  # names the shapes; the images are the gratings
        model=ModelConfig(name="small_cnn"),
        mixup=MixupConfig(alpha=1.0),
        training=TrainConfig(
            epochs=6, batch_size=64, lr=0.05, schedule="cosine", device="cuda", amp=amp, channels_last=True
        ),
    )
    return Trainer(cfg, dataset=data).fit().history


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here")
def test_bf16_run_matches_fp32() -> None:
    """bf16 autocast against fp32, same seed: within BF16_TEST_ERROR_POINTS and BF16_TRAIN_LOSS_REL."""
    fp32, bf16 = image_run(amp=False), image_run(amp=True)
    for a, b in zip(fp32, bf16, strict=True):
        assert b[metrics.TRAIN_LOSS] == pytest.approx(a[metrics.TRAIN_LOSS], rel=BF16_TRAIN_LOSS_REL)
    assert abs(bf16[-1][metrics.TEST_ERROR] - fp32[-1][metrics.TEST_ERROR]) <= BF16_TEST_ERROR_POINTS
    assert fp32[-1][metrics.TEST_ERROR] < fp32[0][metrics.TEST_ERROR], "the run must learn for the check to mean much"


def sync_warnings(trainer: Trainer) -> int:
    """How many synchronising CUDA calls one training epoch makes."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer.train_epoch()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # Only torch's per-call warning: the first set_sync_debug_mode("warn") of a process also warns, once, that
    # the mode is a prototype ("Synchronization debug mode is a prototype feature..."), which is no sync.
    return sum("called a synchronizing CUDA operation" in str(w.message) for w in caught)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here")
@pytest.mark.parametrize(
    "mixup",
    [
        {"mixup.alpha": 1.0},
        {"mixup.lam_per": "sample", "mixup.scope": "same_class"},
        {"mixup.layer": "layer1", "mixup.target": "closest"},
        {"mixup.alpha": 0.0},
    ],
)
def test_training_steps_never_wait_for_the_device(mixup: dict[str, object]) -> None:
    """Host syncs per epoch do not grow with the number of steps: only the epoch's metric read waits."""
    counts = []
    for num_train in (64 * 16, 64 * 120):  # 16 and 120 steps: the longer one passes two divergence checks
        data = SyntheticConfig(num_train=num_train, num_test=64, num_classes=10, shape=(3, 16, 16))
        cfg = ExperimentConfig(
            dataset=DataConfig(name="synthetic", synthetic=data, augment=True),
            model=ModelConfig(name="small_cnn"),
            training=TrainConfig(epochs=2, batch_size=64, device="cuda"),
        ).with_overrides(mixup)
        trainer = Trainer(cfg)
        trainer.train_epoch()  # warm-up: cuDNN autotuning, allocator
        counts.append(sync_warnings(trainer))
    assert counts[0] == counts[1] <= 2, counts
