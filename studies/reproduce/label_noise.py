"""The paper's Table 2 (corrupted labels) at CPU scale, with calibration and FGSM on the same models.

Fashion-MNIST (Debian's files) with 40 % of the training labels replaced as the paper defines it, ERM
against α ∈ {1, 8, 32}, on ``lenet_fc`` (a network that can memorise the wrong labels; ``small_cnn`` cannot,
and there ERM wins: issue 12). The preset's header has the setting, the pilots and the cost.
"""

from __future__ import annotations

from studies.reproduce.experiments import FASHION_MNIST_STAND_IN, Claim, Experiment

_TABLE2 = "Zhang et al. 2018, Table 2 (CIFAR-10, PreAct ResNet-18, 50 % noise: the nearest level to our 40 %)"
_ECE = (
    "Thulasidasan et al. 2019, 'On Mixup Training: Improved Calibration and Predictive Uncertainty' "
    "(lower ECE with mixup; the mixup paper reports no calibration)"
)
_FGSM = "Zhang et al. 2018, §3.5 (ImageNet ResNet-101, white-box FGSM ε = 4/255, top-1 error)"
ALPHAS = (1.0, 8.0, 32.0)
_FINDING = """\
**What came out: the paper's label-noise effect did not show in this run, because ERM did not memorise.**
The run had 12 epochs on 4,000 images and 2 seeds: what about 30 minutes allowed on this machine while four
other engineers' work shared it (load average 20-30; our trials got ~0.15 of a core each, ~45 s an epoch
against ~7 s measured at a lighter load). In 12 epochs (372 SGD steps) ERM's last-epoch training error
stayed at 40.7 %, above the 36 % of training labels that are wrong: it had not fitted the corrupted labels,
so its last-epoch test error equals its best, and there was nothing for mixup to prevent; mixup's extra
regularisation only cost accuracy (ERM ahead at every α; at α = 8 and 32 by 4.4-4.8 points with intervals
above 0; their λ-weighted training error of ~63 % says they were still underfitting). With 2 seeds the 95 %
interval uses t(0.975, 1) = 12.7, so only a large and consistent difference excludes 0. The memorising
regime needs more steps: in a pilot of the same setting with 24 epochs (seed 0, `repro_label_noise.yaml`'s
header) ERM's training error fell to 15 % after the first lr step and its last-epoch test error rose to
27.1 %, while α = 8 stayed at 17.6 %: the paper's direction, by 9.5 points; the 24-epoch experiment below
(ERM vs α = 8, 2 seeds) shows it through the suite.

FGSM (ε = 0.1, after the last epoch): mixup's error under attack is 11-12 points below ERM's at every α and
lower in each seed (α = 1: 55.8 / 57.6 vs ERM 70.4 / 66.4), the paper's direction, but with 2 seeds no
interval excludes 0. ECE: α = 32 is 6.0 points lower than ERM with an interval excluding 0 (Thulasidasan et
al.'s direction), α = 8 lower but not resolved, α = 1 the same as ERM (28.3 vs 28.2). Every model's ECE is
high (22-28 %): with 36 % wrong training labels and clean test labels, its confidence is learnt against
labels that are often wrong.
"""


def _claims() -> tuple[Claim, ...]:
    claims: list[Claim] = []
    for alpha in ALPHAS:
        row = {"alpha": alpha}
        # The paper's 50 % row gives ERM and its best mixup (α = 32) only: the other α have no number here.
        paper_best, paper_last = (11.3, 12.7) if alpha == 32.0 else (None, None)
        claims += [
            Claim(row, "best_test_error", "lower", 18.8, paper_best, _TABLE2, label=f"α={alpha:g} · best error"),
            Claim(row, "test_error", "lower", 44.6, paper_last, _TABLE2, label=f"α={alpha:g} · last-epoch error"),
        ]
    for alpha in ALPHAS:
        row = {"alpha": alpha}
        claims += [
            Claim(row, "test_ece", "lower", None, None, _ECE, label=f"α={alpha:g} · ECE (last epoch)"),
            Claim(row, "fgsm_test_error", "lower", 90.7, 75.2, _FGSM, label=f"α={alpha:g} · FGSM error (last epoch)"),
        ]
    return tuple(claims)


LABEL_NOISE = Experiment(
    name="table2-label-noise",
    title="Table 2: 40 % label noise on Fashion-MNIST (lenet_fc), with calibration and FGSM",
    preset="repro_label_noise",
    claims=_claims(),
    quick={
        "dataset": {**FASHION_MNIST_STAND_IN, "label_noise": 0.4, "label_noise_mode": "uniform"},
        "training.epochs": 2,
        "training.batch_size": 32,
        "search.seeds": [0, 1],
    },
    finding=_FINDING,
)

_FINDING_LONG = """\
**What came out: the paper's direction on last-epoch error, with a 95 % interval excluding 0.** In 24 epochs
ERM fitted most of the wrong labels (training error 17.8 %, below the 36 % that are wrong) and its
last-epoch test error rose to 26.3 % from a best of 17.8 %; mixup (α = 8) did not memorise (λ-weighted
training error 61 %) and ended at 17.4 %: 8.9 points lower [−17.0, −0.8], each seed 8-10 points (the
paper's 50 % row: ERM 44.6 → 12.7 last). The best (early-stopped) error is only 0.7 points apart, not
resolved: ERM's best comes before it memorises, as in the paper, where the best-error gap is also the
smaller one. FGSM: mixup 25.4 points lower [−25.6, −25.3] (ERM's memorised model is broken by almost any
perturbation: 98.9 %). ECE: the memorising ERM is the better calibrated here (7.6 vs 25.1 %, not resolved
with 2 seeds): its confidence on clean test images matches its accuracy once it has fitted its training
set, while mixup's soft targets on noisy labels keep it under-confident. Ran on a quieter machine than the
12-epoch run (load average 8 falling to 3): 11 min for the 4 trials at once.
"""

# The memorising regime the 12-epoch run did not reach (ERM's training error stayed above the share of wrong
# labels): 24 epochs, as in the pilot where ERM fitted the noise; ERM vs α = 8 only, to fit the time left.
LABEL_NOISE_LONG = Experiment(
    name="table2-label-noise-24ep",
    title="Table 2, memorising regime: 40 % label noise on Fashion-MNIST (lenet_fc), 24 epochs, ERM vs α = 8",
    preset="repro_label_noise",
    claims=tuple(c for c in _claims() if dict(c.row) == {"alpha": 8.0}),
    overrides={
        "training.epochs": 24,
        "search.space.alpha": [0.0, 8.0],
        "resources.cpu": 0.5,  # the 4 trials at once: one round, no tail of a lone trial
        "max_concurrent_trials": 4,
    },
    quick=LABEL_NOISE.quick,
    finding=_FINDING_LONG,
)

_FINDING_LONG_3 = """\
**What came out: the paper's label-noise effect, at both α, with intervals well clear of 0.** ERM fitted the
noise again (training error 17.2 %, below the 36 % of wrong labels) and its last-epoch test error
rose to 26.65 % from a best of 17.65 %; mixup did not memorise (λ-weighted training error 61-63 %) and ended
9.19 points lower at α = 8 [−11.25, −7.12] and 8.86 points lower at α = 32 [−10.58, −7.14] (3 seeds, each
resampling the subset and the noise; the paper's 50 % row: ERM 44.6 → 12.7 last at α = 32). Best
(early-stopped) error: no difference (−0.40 and −0.06, intervals ±2): here ERM's best comes before it
memorises and equals mixup's, where the paper's ERM best is 7.5 points behind (CIFAR-10 at 200 epochs, a
network 13× larger). FGSM (ε = 0.1, last epoch): 99.1 % for the memorising ERM against 72.2 / 69.6 %,
−27.0 [−33.5, −20.4] and −29.5 [−35.8, −23.3]: the paper's direction (its ImageNet figure is 90.7 → 75.2).
**ECE does not go Thulasidasan et al.'s way here, and the intervals exclude 0**: ERM 7.2 %, mixup 25.0 / 23.1 %.
Under 40 % noise mixup's soft targets and unfitted noisy labels leave it under-confident on clean test images,
while ERM, having fitted its training set, is confident and mostly right on them; their clean-label
finding is not this setting. 38 min wall for the 9 trials at once, the driver and trials at a lower
scheduling priority than a full `make test` running beside them for 33 of those minutes (load average up to
~100 runnable threads); the 2-seed run above, on a quieter machine, took 11 min for 4 trials.
"""

# The same memorising regime with α = 8 and the paper's 50 %-noise α = 32, 3 seeds: the 2-seed run's
# interval stands on t(0.975, 1) = 12.7; a third seed narrows it (t = 4.3). 9 trials at once, one round.
LABEL_NOISE_LONG_3 = Experiment(
    name="table2-label-noise-24ep-3seeds",
    title="Table 2, memorising regime, 3 seeds: 40 % label noise on Fashion-MNIST (lenet_fc), 24 epochs, "
    "ERM vs α ∈ {8, 32}",
    preset="repro_label_noise",
    claims=tuple(c for c in _claims() if dict(c.row) in ({"alpha": 8.0}, {"alpha": 32.0})),
    overrides={
        "training.epochs": 24,
        "search.space.alpha": [0.0, 8.0, 32.0],
        "search.seeds": [0, 1, 2],
        "resources.cpu": 0.2,
        "max_concurrent_trials": 9,
    },
    quick=LABEL_NOISE.quick,
    finding=_FINDING_LONG_3,
)

EXPERIMENTS = [LABEL_NOISE, LABEL_NOISE_LONG, LABEL_NOISE_LONG_3]
