"""Every public function of jaxcnn.functional, fed its characteristic mistakes.

Each case asserts a ValueError whose message starts with the function's name
and contains the argument's name and what is expected. Mistakes that depend
only on shapes, dtypes and Python arguments are found at trace time, so each
such case also runs under ``jax.jit`` (array arguments traced). Label *values*
cannot be inspected under jit: those cases run eagerly, and their jit-safe
form (a device-side count in the train step's metrics) is tested in
tests/train/test_label_check.py.
"""
from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn.functional as F
from jaxcnn.functional import filters

x4 = np.zeros((2, 6, 6, 3), np.float32)           # NHWC
w4 = np.zeros((3, 3, 3, 4), np.float32)           # HWIO
x3 = np.zeros((2, 6, 3), np.float32)              # NLC
x5 = np.zeros((1, 4, 4, 4, 2), np.float32)        # NDHWC
ints4 = np.zeros((2, 6, 6, 3), np.int32)
logits = np.zeros((4, 3), np.float32)
labels = np.array([0, 1, 2, 1], np.int32)
bn_params, bn_state = F.batch_norm_init(3)
key = jax.random.PRNGKey(0)


@dataclasses.dataclass
class Case:
    function: str                    # public name, "filters.x" for the filters module
    args: tuple
    kwargs: dict
    words: tuple[str, ...]           # the argument named, and what is expected
    jit: bool = True                 # a shape/argument check: must fire under jit too

    def __str__(self):
        return f"{self.function}-{'-'.join(self.words)[:40]}"


def case(function, *args, words, jit=True, **kwargs):
    return Case(function, args, kwargs, tuple(words), jit)


CASES = [
    # convolution
    case("conv2d", x3, w4, words=["NHWC", "rank 4"]),
    case("conv2d", x4, np.zeros((3, 3, 4, 4), np.float32), words=["channels mismatch", "I=C/groups=3"]),
    case("conv2d", np.zeros((2, 3, 6, 6), np.float32), w4,
         words=["looks channels-first (NCHW", "x.transpose(0, 2, 3, 1)"]),
    case("conv2d", x4, np.zeros((4, 3, 2, 2), np.float32),  # (O, I, KH, KW)
         words=["looks like PyTorch's OIHW", "w.transpose(2, 3, 1, 0)"]),
    case("conv2d", x4, w4, padding="FULL", words=["padding", '"SAME" or "VALID"']),
    case("conv2d", x4, w4, padding=-1, words=["padding", ">= 0"]),
    case("conv2d", x4, w4, stride=0, words=["stride", ">= 1"]),
    case("conv2d", x4, w4, dilation=(1, 0), words=["dilation", ">= 1"]),
    case("conv2d", x4, np.zeros((3, 3, 1, 4), np.float32), groups=2, words=["groups=2", "divide the input channels"]),
    case("conv2d", x4, np.zeros((7, 7, 3, 4), np.float32), words=["kernel (7, 7)", "larger than the padded input"]),
    case("conv2d", x4, w4, impl="cuda", words=["impl", "expected one of"]),
    case("conv2d", x4, w4, np.zeros(5, np.float32), words=["bias", "shape (4,)"]),
    case("conv1d", x4, np.zeros((3, 3, 4), np.float32), words=["NLC", "rank 3"]),
    case("conv1d", x3, np.zeros((9, 3, 4), np.float32), words=["kernel (9,)", "larger than the padded input"]),
    case("conv3d", x4, np.zeros((1, 1, 1, 3, 4), np.float32), words=["NDHWC", "rank 5"]),
    case("conv3d", x5, np.zeros((1, 1, 1, 3, 4), np.float32), words=["channels mismatch", "I=C/groups=2"]),
    case("unfold", x4, 7, words=["kernel (7, 7)", "larger than the padded input"]),
    case("unfold", x4, 0, words=["kernel_size", ">= 1"]),
    case("fold", np.zeros((2, 4, 4, 27), np.float32), (6, 6), 3, stride=2, words=["patches", "(H', W')"]),
    case("fold", np.zeros((2, 4, 4), np.float32), (6, 6), 3, words=["patches", "rank 4"]),
    case("conv_output_size", 5, 7, words=["kernel", "larger"], jit=False),
    case("conv_output_size", 6, 3, stride=2, strict=True, words=["stride 2", "is not an integer"], jit=False),
    case("conv_output_shape", (6, 6, 3), (3, 3, 3, 4), words=["kernel shape", "rank 3"], jit=False),
    case("conv_output_shape", (6, 6), (3, 3), words=["input shape", "rank 3-5"], jit=False),
    case("locally_connected2d", x4, np.zeros((4, 4, 3, 3, 2, 5), np.float32), words=["channels mismatch", "C=2"]),
    case("locally_connected2d", x4, np.zeros((3, 3, 3, 2), np.float32), words=["kernel", "rank 6"]),
    case("tiled_conv2d", x4, np.zeros((2, 2, 9, 9, 3, 4), np.float32), words=["kernel (9, 9)", "larger"]),
    case("conv2d_backward", np.zeros((2, 4, 4, 5), np.float32), x4, w4, words=["grad_out", "(2, 4, 4, 4)"]),
    # pooling
    case("max_pool2d", x4, 7, words=["window (7, 7)", "larger than the padded input"]),
    case("max_pool2d", x3, 2, words=["NHWC", "rank 4"]),
    case("max_pool2d", x4, 2, stride=0, words=["stride", ">= 1"]),
    case("max_pool2d", x4, 2, padding=2, words=["padding", "smaller than the window"]),
    case("avg_pool2d", x4, (2, 0), words=["window", ">= 1"]),
    case("avg_pool2d", x4, 2, count_include_pad="yes", words=["count_include_pad", "bool"]),
    case("lp_pool2d", x4, 0.0, 2, words=["p must be", ">= 1 or float(\"inf\")"]),
    case("lp_pool2d", x4, 2.0, 9, words=["window (9, 9)", "larger"]),
    case("weighted_avg_pool2d", x4, 3, sigma=0.0, words=["sigma", "positive"]),
    case("global_avg_pool", np.zeros((2, 3), np.float32), words=["NHWC", "rank 3-5"]),
    case("global_avg_pool", ints4, words=["floating-point", "astype"]),
    case("global_max_pool", np.zeros((3,), np.float32), words=["NHWC", "rank 3-5"]),
    case("adaptive_avg_pool2d", x4, 0, words=["output_size", ">= 1"]),
    case("adaptive_max_pool2d", x3, 2, words=["NHWC", "rank 4"]),
    case("max_pool2d_backward", np.zeros((2, 2, 2, 3), np.float32), x4, 2, words=["grad_out", "(2, 3, 3, 3)"]),
    case("avg_pool2d_backward", np.zeros((2, 3, 3, 3), np.float32), x4, 2, count_include_pad=1,
         words=["count_include_pad", "bool"]),
    # normalisation
    case("batch_norm", x4, bn_params, F.batch_norm_init(4)[1], train=True, words=["state", "(3,)"]),
    case("batch_norm", x4, F.batch_norm_init(4)[0], bn_state, train=False, words=["params", "(3,)"]),
    case("batch_norm", ints4, bn_params, bn_state, train=True, words=["floating-point", "astype"]),
    case("batch_norm", x4, bn_params, bn_state, train=1, words=["train", "Python bool"]),
    case("batch_norm", x4, bn_params, bn_state, train=True, momentum=1.5, words=["momentum", "[0, 1]"]),
    case("batch_norm", x4, bn_params, {"mean": np.zeros(3, np.float32)}, train=True,
         words=["state", "'var'"]),
    case("batch_norm", np.zeros((2, 3, 6, 6), np.float32), bn_params, bn_state, train=True,
         words=["params", "looks channels-first (NCHW", "x.transpose(0, 2, 3, 1)"]),
    case("batch_norm_init", 0, words=["num_channels", "positive int"], jit=False),
    case("fold_batch_norm", w4, np.zeros(4, np.float32), bn_params, bn_state, words=["params[\"scale\"]", "shape (4,)"]),
    case("group_norm", x4, {"scale": np.ones(3, np.float32), "bias": np.zeros(3, np.float32)}, 2,
         words=["num_groups=2", "divide"]),
    case("layer_norm", ints4, {"scale": np.ones(3, np.float32), "bias": np.zeros(3, np.float32)},
         words=["floating-point", "astype"]),
    case("instance_norm", x4, {"scale": np.ones(4, np.float32), "bias": np.zeros(4, np.float32)},
         words=["scale", "(3,)"]),
    case("local_response_norm", x4, size=0, words=["size", "positive int"]),
    # activations
    case("sigmoid", ints4, words=["x", "floating"]),
    case("leaky_relu", x4, alpha="0.1", words=["alpha", "float"]),
    case("elu", x4, alpha=None, words=["alpha", "float"]),
    case("softmax", x4, axis=4, words=["axis", "[-4, 4)"]),
    case("log_softmax", x4, axis=-5, words=["axis", "[-4, 4)"]),
    case("maxout", x4, 2, words=["num_pieces", "divide"]),
    case("dropout", x4, 1.5, key=key, train=True, words=["rate", "[0, 1)"]),
    case("dropout", x4, 0.5, key=None, train=True, words=["key", "PRNG key"]),
    case("dropout", ints4, 0.5, key=key, train=True, words=["floating-point", "dtype int32"]),
    # losses
    case("softmax_cross_entropy", logits, labels[:3], words=["labels", "shape (4,)"]),
    case("softmax_cross_entropy", logits, labels.astype(np.float32), words=["labels", "integer class indices"]),
    case("softmax_cross_entropy", logits.astype(np.int32), labels, words=["logits", "floating-point"]),
    case("softmax_cross_entropy", logits, np.array([0, 1, 3, 1], np.int32), words=["labels", "[0, 3)"], jit=False),
    case("multiclass_hinge", logits[None], labels, words=["logits", "(N, K)"]),
    case("multiclass_hinge", logits, np.array([-1, 0, 0, 0], np.int32), words=["labels", "[0, 3)"], jit=False),
    case("accuracy", logits, labels[:, None], words=["labels", "shape (4,)"]),
    case("binary_hinge", np.zeros(4, np.float32), np.array([1, 0, 1, -1], np.float32),
         words=["targets", "-1 or +1"], jit=False),
    case("binary_hinge", np.zeros(4, np.int32), np.ones(4, np.float32), words=["scores", "floating-point"]),
    case("l1_loss", np.zeros(3, np.float32), np.zeros(4, np.float32), words=["pred", "same shape"]),
    case("l2_loss", np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32), words=["pred", "same shape"]),
    case("smooth_l1_loss", np.zeros(3, np.float32), np.zeros(3, np.float32), beta=-1.0, words=["beta", ">= 0"]),
    # initializers
    case("he_normal", key, (3, 3, 0, 4), words=["shape", ">= 1"], jit=False),
    case("he_uniform", key, (3, 3, 2, 4), jnp.int32, words=["dtype", "floating"], jit=False),
    case("lecun_normal", key, "3x3", words=["shape", "sequence of ints"], jit=False),
    case("lecun_uniform", key, (3, 3, 2, 4), jnp.int8, words=["dtype", "floating"], jit=False),
    case("glorot_normal", key, (4, -1), words=["shape", ">= 1"], jit=False),
    case("glorot_uniform", key, (), words=["shape ()", "rank 2 to 5"], jit=False),
    case("torch_uniform", key, (3, 3, 0, 4), words=["shape", ">= 1"], jit=False),
    case("initializer", "kaiming", words=["unknown initializer 'kaiming'", "torch_uniform"], jit=False),
    case("fan_in_fan_out", (), words=["shape ()", "rank 2 to 5"], jit=False),
    # filters
    case("filters.box", 0, words=["k", ">= 1"], jit=False),
    case("filters.gaussian", 3, -1.0, words=["sigma", "> 0"], jit=False),
    case("filters.correlate2d", np.zeros((5, 5), np.float32), np.zeros((3, 3), np.float32), mode="wrap",
         words=["mode", '"valid", "same", "full"']),
    case("filters.convolve2d", x4, np.zeros((3, 3), np.float32), words=["image", "(H, W) or (H, W, C)"]),
    case("filters.identity", 0, words=["size", ">= 1"], jit=False),
    case("filters.high_pass", 0, words=["size", ">= 1"], jit=False),
    case("filters.laplacian", neighbours=6, words=["neighbours", "4 or 8"], jit=False),
    # metrics and regularization
    case("top_k_accuracy", logits, labels, 0, words=["k must be", "[1, 3]"]),
    case("top_k_accuracy", logits, labels[None], 1, words=["labels", "shape (4,)"]),
    case("l2_regularizer", {"a": np.ones(3, np.float32)}, mask={"b": True},
         words=["mask", "structure of params"], jit=False),
    case("l2_regularizer", {"a": np.ones(3, np.int32)}, words=["parameters", "floating"], jit=False),
]

# Public functions with no mistake to make: no arguments, or any numeric array is valid.
NO_MISTAKES = {
    "filters.sobel_x": "no arguments", "filters.sobel_y": "no arguments",
    "filters.prewitt_x": "no arguments", "filters.prewitt_y": "no arguments",
    "filters.sharpen": "no arguments", "filters.edge": "no arguments",
    "weight_mask": "any pytree: a leaf named kernel is a weight, anything else is not",
    "relu": "any numeric array (max(x, 0) is exact for integers)",
    "tanh": "any numeric array (integers are promoted to float, as jnp.tanh does)",
}


def _public_functions() -> set[str]:
    names = {n for n in dir(F) if not n.startswith("_") and callable(getattr(F, n))
             and not isinstance(getattr(F, n), type(F))}
    names |= {f"filters.{n}" for n in dir(filters) if not n.startswith("_")
              and callable(getattr(filters, n))
              and getattr(getattr(filters, n), "__module__", "") == filters.__name__}
    return names


def _function(name: str):
    module, _, attr = name.rpartition(".")
    return getattr(filters if module == "filters" else F, attr)


def test_every_public_function_has_a_case():
    covered = {c.function for c in CASES} | set(NO_MISTAKES)
    assert _public_functions() - covered == set()


def _check_message(case_: Case, error: ValueError):
    message = str(error)
    name = case_.function.rpartition(".")[2]
    assert re.match(rf"{name}[: ]", message), message
    for word in case_.words:
        assert word in message, (word, message)


@pytest.mark.parametrize("case_", CASES, ids=str)
def test_mistake_raises_a_value_error_naming_function_argument_and_expectation(case_):
    with pytest.raises(ValueError) as raised:
        _function(case_.function)(*case_.args, **case_.kwargs)
    _check_message(case_, raised.value)


def _is_array(value) -> bool:
    return isinstance(value, (np.ndarray, jax.Array))


@pytest.mark.parametrize("case_", [c for c in CASES if c.jit], ids=str)
def test_shape_mistakes_also_raise_at_trace_time_under_jit(case_):
    function = _function(case_.function)
    arrays = [v for v in (*case_.args, *case_.kwargs.values()) if _is_array(v)]
    assert arrays, "a jit case needs an array argument"

    def call(*traced):
        supply = iter(traced)
        args = [next(supply) if _is_array(v) else v for v in case_.args]
        kwargs = {k: next(supply) if _is_array(v) else v for k, v in case_.kwargs.items()}
        return function(*args, **kwargs)

    with pytest.raises(ValueError) as raised:
        jax.jit(call).lower(*arrays)  # tracing only: nothing is compiled or run
    _check_message(case_, raised.value)
