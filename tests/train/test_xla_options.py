"""The steps' XLA:CPU compiler options: version gate, effect on the compiled steps, same numbers."""
import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import models, train
from jaxcnn.train import steps
from jaxcnn.train.xla_options import TESTED_JAXLIB, step_compiler_options


def test_options_only_for_tested_jaxlib_versions():
    major, minor = TESTED_JAXLIB[0]
    options = step_compiler_options(f"{major}.{minor}.7")
    assert set(options) == {"xla_cpu_experimental_ynn_fusion_type"}
    assert "CONVOLUTION" not in options["xla_cpu_experimental_ynn_fusion_type"]
    assert step_compiler_options("99.1.0") == {}
    assert step_compiler_options("not-a-version") == {}
    options["changed"] = True  # a fresh dict every call
    assert "changed" not in step_compiler_options(f"{major}.{minor}.0")


def _state_and_batch(conv_impl="auto"):
    model = models.get("lenet5", conv_impl=conv_impl)
    state = train.create_train_state(model, train.make_optimizer("sgd", 0.01, momentum=0.9),
                                     jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((32, 28, 28, 1)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, 32), jnp.int32)
    return state, images, labels


def _convolutions_on_ynnpack(hlo: str) -> int:
    """How many YNNPACK fusions of the compiled module contain a convolution."""
    fused = set(re.findall(r"calls=%([\w.\-]+), [^\n]*__ynn_fusion", hlo))
    bodies = re.findall(r"\n%([\w.\-]+) [^\n]*\{\n(.*?)\n\}", hlo, flags=re.S)
    return sum(1 for name, body in bodies if name in fused and "convolution(" in body)


def test_steps_keep_convolutions_off_ynnpack_and_compute_the_same_numbers():
    # With impl="onednn" (auto's choice where the kernels are built) the step has no XLA
    # convolution at all; the options matter for XLA's, so trace the model with those.
    _check_options_effect()


def _check_options_effect():
    state, images, labels = _state_and_batch(conv_impl="xla")
    if not step_compiler_options():
        return  # untested jaxlib: the steps compile with XLA's defaults, nothing to check
    # The kernel gradients (and every other convolution of the train step) leave YNNPACK.
    with_options = steps.train_step.lower(state, images, labels).compile().as_text()
    defaults = jax.jit(steps.train_step_body).lower(state, images, labels).compile().as_text()
    assert _convolutions_on_ynnpack(defaults) > 0  # XLA's default: YNNPACK convolutions
    assert _convolutions_on_ynnpack(with_options) == 0

    reference_metrics = jax.jit(steps.eval_step_body)(state, images, labels)
    metrics = steps.eval_step(state, images, labels)
    for got, want in zip(jax.tree.leaves(metrics), jax.tree.leaves(reference_metrics)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    reference_state, reference_metrics = jax.jit(steps.train_step_body)(state, images, labels)
    new_state, metrics = steps.train_step(state, images, labels)  # donates state: used last
    for got, want in zip(jax.tree.leaves((new_state.params, metrics)),
                         jax.tree.leaves((reference_state.params, reference_metrics))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
