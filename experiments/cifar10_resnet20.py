"""ResNet-20 on CIFAR-10, the recipe of He et al. 2015 (section 4.2).

    python experiments/cifar10_resnet20.py --workdir runs/cifar10_resnet20  # full recipe
    python experiments/cifar10_resnet20.py --smoke     # tiny version: ~1 minute on a 2-core CPU
    python experiments/cifar10_resnet20.py --smoke --data-dir DIR   # smoke on CIFAR-10 files

The recipe: ResNet-20 (3 stages of 3 basic blocks, 16/32/64 filters, option-A
identity shortcuts, 269,722 parameters), SGD with momentum 0.9, weight decay
1e-4, batch 128, learning rate 0.1 divided by 10 at 32k and 48k iterations and
stopped at 64k; training images randomly cropped from a 4-pixel zero-padded
copy and flipped horizontally. With 50,000 training images and the last
partial batch dropped an epoch is 390 iterations, so 64k iterations are 164
epochs (63,960 iterations) and the decays fall at epochs 32000/390 and
48000/390 (iterations 32,000 and 48,000 exactly). He et al. report 8.75% test
error (91.25% accuracy) training on 45k images.

The CIFAR-10 files are not in the repo: put the python version
(cifar-10-batches-py/) in data/cifar10/ or $JAXCNN_DATA_DIR, or pass
--data-dir; without them jaxcnn tries TFDS. Expected runtime of the full
recipe: hours on a GPU, days on a 2-core CPU.

--smoke keeps the recipe (model, optimizer, schedule shape, augmentation) but
runs 2 epochs of 8 steps of 32 images: on the CIFAR-10 files given with
--data-dir, else on scikit-learn's 8x8 digits (always available offline).
"""
from __future__ import annotations

import sys

from jaxcnn.train.config import TrainConfig

try:
    from experiments._runner import run_recipe
except ImportError:  # run as a script: experiments/ is on sys.path, not the repo root
    from _runner import run_recipe

TRAIN_IMAGES, BATCH = 50_000, 128
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH  # 390
TOTAL_ITERATIONS, DECAY_ITERATIONS = 64_000, (32_000, 48_000)


def get_config() -> TrainConfig:
    """He et al.'s CIFAR-10 recipe for ResNet-20, in epochs of 390 iterations."""
    return TrainConfig(
        model="resnet20",
        dataset="cifar10",
        epochs=TOTAL_ITERATIONS // STEPS_PER_EPOCH,
        batch_size=BATCH,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="step",
        decay_epochs=tuple(i / STEPS_PER_EPOCH for i in DECAY_ITERATIONS),
        decay_factor=0.1,
        augment=True,
        checkpoint_every_steps=1000,
    )


def smoke_config(config: TrainConfig, data_dir: str | None = None) -> TrainConfig:
    """The same recipe at toy scale: 2 epochs x 8 steps of 32, lr divided by 10 after epoch 1."""
    return config.replace(
        dataset="cifar10" if data_dir else "digits",
        data_dir=data_dir,
        train_examples=256,
        test_examples=200,
        epochs=2,
        batch_size=32,
        eval_batch_size=200,
        decay_epochs=(1,),
        checkpoint_every_steps=5,
    )


def _adjust(config: TrainConfig, args) -> TrainConfig:
    if args.smoke:
        return smoke_config(config, args.data_dir)
    return config.replace(data_dir=args.data_dir)


def main(argv: list[str] | None = None) -> int:
    return run_recipe(
        get_config(), argv, description=__doc__, default_workdir="runs/cifar10_resnet20",
        has_smoke=True, adjust=_adjust,
        extra_arguments=lambda parser: parser.add_argument(
            "--data-dir", default=None, help="directory with the CIFAR-10 files"),
    )


if __name__ == "__main__":
    sys.exit(main())
