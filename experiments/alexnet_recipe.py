"""AlexNet, Krizhevsky, Sutskever & Hinton 2012: the training recipe as a config; not run here.

    python experiments/alexnet_recipe.py --workdir runs/alexnet   # needs ImageNet (see below)
    jaxcnn train --model alexnet --dataset DATASET --schedule plateau \\
        --lr 0.01 --momentum 0.9 --weight-decay 5e-4 --batch-size 128   # the same knobs

The paper's recipe (section 5): SGD with momentum 0.9, weight decay 5e-4,
batch 128, dropout 0.5 in fc6 and fc7, learning rate 0.01 "divided by 10 when
the validation error rate stopped improving with the current learning rate"
(three times in ~90 epochs). Here the manual step is the ``plateau``
schedule: the learning rate is multiplied by ``plateau_factor`` = 0.1 once the
test accuracy has not improved (by more than 1e-4) for ``plateau_patience``
epochs; its state is in the checkpoint, so a resumed run reduces at the same
epochs. Patience 5 is our choice (the paper gives none).

AlexNet expects 224x224x3 ImageNet images (the paper's 60M-parameter model
needs ImageNet to train, ~90 epochs: days on one GPU). jaxcnn's in-memory
input pipeline does not load ImageNet (see experiments/imagenet_resnet50.py),
so this script stops with a one-line "unknown dataset" error here; the config
documents the recipe and is checked by the tests.
"""
from __future__ import annotations

import sys

from jaxcnn.train.config import TrainConfig

try:
    from experiments._runner import run_recipe
except ImportError:  # run as a script: experiments/ is on sys.path, not the repo root
    from _runner import run_recipe


def get_config() -> TrainConfig:
    """The AlexNet paper's SGD recipe with reduce-on-plateau."""
    return TrainConfig(
        model="alexnet",
        model_kwargs={"dropout_rate": 0.5},
        dataset="imagenet2012",
        epochs=90,
        batch_size=128,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="plateau",
        plateau_factor=0.1,
        plateau_patience=5,
        checkpoint_every_steps=1000,
    )


def main(argv: list[str] | None = None) -> int:
    return run_recipe(get_config(), argv, description=__doc__,
                      default_workdir="runs/alexnet")


if __name__ == "__main__":
    sys.exit(main())
