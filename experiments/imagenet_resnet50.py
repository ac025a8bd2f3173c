"""ResNet-50 on ImageNet (TFDS ``imagenet2012``): the config only; not run here.

    python experiments/imagenet_resnet50.py --workdir runs/imagenet_resnet50

The recipe of Goyal et al. 2017 ("ImageNet in 1 hour") as used by the Flax
ImageNet example: SGD with Nesterov momentum 0.9, weight decay 1e-4, global
batch 1024 with lr 0.1 x 1024/256 = 0.4, 5 epochs of linear warm-up then
cosine decay, 100 epochs (warm-up + cosine is the modern form of He et al.'s
"divide by 10 at epochs 30, 60, 80"); training images augmented, data parallel
over 8 devices. Expected: ~76% top-1 after roughly 7 hours on 8 V100 / a
TPU v3-8.

Status: jaxcnn's input pipeline (``jaxcnn.data``) holds a dataset in host
memory as one uint8 array, which fits MNIST and CIFAR-10 but not ImageNet's
1.28M variable-size JPEGs, and ``jaxcnn.data.load`` does not know
``imagenet2012``. Running this config therefore stops with a one-line
"unknown dataset" error until a streaming loader (TFDS ``data_source`` with
random-resized-crop decoding) is added; the config documents the recipe and is
checked by the tests.
"""
from __future__ import annotations

import sys

from jaxcnn.train.config import TrainConfig

try:
    from experiments._runner import run_recipe
except ImportError:  # run as a script: experiments/ is on sys.path, not the repo root
    from _runner import run_recipe

DEVICES, GLOBAL_BATCH = 8, 1024


def get_config() -> TrainConfig:
    """Goyal et al.'s ResNet-50 recipe (linear lr scaling, warm-up, cosine), 8 devices."""
    return TrainConfig(
        model="resnet50",
        dataset="imagenet2012",
        epochs=100,
        batch_size=GLOBAL_BATCH,
        eval_batch_size=GLOBAL_BATCH,
        optimizer="sgd",
        lr=0.1 * GLOBAL_BATCH / 256,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        schedule="warmup_cosine",
        warmup_epochs=5,
        augment=True,
        devices=DEVICES,
        parallel="sharded",
        checkpoint_every_steps=1000,
    )


def main(argv: list[str] | None = None) -> int:
    return run_recipe(get_config(), argv, description=__doc__,
                      default_workdir="runs/imagenet_resnet50")


if __name__ == "__main__":
    sys.exit(main())
