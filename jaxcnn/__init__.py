"""jaxcnn: convolutional neural networks in functional JAX, compiled by XLA.

Layers of the package (dependencies point down this list only):
    jaxcnn.functional  pure jnp/lax ops (conv, pool, norm, activations, losses, filters)
    jaxcnn.nn          Flax linen modules that hold params/state and call functional
    jaxcnn.models      LeNet-5, AlexNet, VGG, GoogLeNet, ResNet and a name registry
    jaxcnn.data        datasets and input pipelines
    jaxcnn.train       train state, jit/pmap/sharded steps, loop, checkpoints
    jaxcnn.native      CPU runtime: oneDNN kernels for XLA's FFI, malloc settings

Importing jaxcnn sets glibc's malloc to keep a train step's freed buffers
(:func:`jaxcnn.native.malloc.keep_freed_memory`; ``JAXCNN_MALLOC_TUNING=0``
opts out) before JAX starts its threads: without it every XLA:CPU step maps
and unmaps its temporary block (ResNet-20: 298 MB, 72,800 page faults per step).
"""
from jaxcnn.native.malloc import keep_freed_memory as _keep_freed_memory

_keep_freed_memory()

__version__ = "0.1.0"
