"""Pure, jit-able, differentiable CNN ops. Activations are NHWC, kernels HWIO.

Each submodule appends its public names below (one block per submodule).
"""
from jaxcnn.functional.conv import conv1d, conv2d, conv3d, fold, unfold
from jaxcnn.functional.shapes import conv_output_shape, conv_output_size
from jaxcnn.functional.pool import (
    avg_pool2d,
    global_avg_pool,
    global_max_pool,
    lp_pool2d,
    max_pool2d,
    weighted_avg_pool2d,
)
from jaxcnn.functional.batch_norm import batch_norm, batch_norm_init, fold_batch_norm
from jaxcnn.functional.activations import (
    dropout,
    elu,
    leaky_relu,
    log_softmax,
    maxout,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from jaxcnn.functional.local import locally_connected2d, tiled_conv2d
from jaxcnn.functional.norm import group_norm, instance_norm, layer_norm, local_response_norm
from jaxcnn.functional.manual_grad import (
    avg_pool2d_backward,
    conv2d_backward,
    max_pool2d_backward,
)
from jaxcnn.functional.adaptive_pool import adaptive_avg_pool2d, adaptive_max_pool2d
from jaxcnn.functional.losses import (
    accuracy,
    top_k_accuracy,
    binary_hinge,
    l1_loss,
    l2_loss,
    multiclass_hinge,
    smooth_l1_loss,
    softmax_cross_entropy,
)
from jaxcnn.functional.init import (
    fan_in_fan_out,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    initializer,
    lecun_normal,
    lecun_uniform,
    torch_uniform,
)
from jaxcnn.functional import filters
from jaxcnn.functional.regularization import l2_regularizer, weight_mask

# Every public function names itself in its ValueErrors ("conv2d: stride must be ...").
from jaxcnn.functional._named_errors import name_public_errors as _name_public_errors

_name_public_errors(globals(), [_n for _n in dir() if not _n.startswith("_") and _n != "filters"])
_name_public_errors(vars(filters), [_n for _n in dir(filters) if not _n.startswith("_")
                                    and getattr(getattr(filters, _n), "__module__", "") == filters.__name__])
