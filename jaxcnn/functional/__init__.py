"""Pure, jit-able, differentiable CNN ops. Activations are NHWC, kernels HWIO.

Each submodule appends its public names below (one block per submodule).
"""
