"""Pure, jit-able, differentiable CNN ops. Activations are NHWC, kernels HWIO.

Each submodule appends its public names below (one block per submodule).
"""
from jaxcnn.functional.conv import conv1d, conv2d, conv3d, unfold
