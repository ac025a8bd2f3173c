"""jaxcnn: convolutional neural networks in functional JAX, compiled by XLA.

Layers of the package (dependencies point down this list only; README.md's
"Layout" section has the map, tests/test_layout.py enforces it):
    jaxcnn.functional  pure jnp/lax ops (conv, pool, norm, activations, losses, filters)
    jaxcnn.nn          Flax linen modules that hold params/state and call functional
    jaxcnn.models      LeNet-5, AlexNet, VGG, GoogLeNet, ResNet and a name registry
    jaxcnn.data        datasets and input pipelines
    jaxcnn.train       train state, jit/pmap/sharded steps, executors, loop, checkpoints
    jaxcnn.native      CPU runtime: oneDNN kernels for XLA's FFI, malloc settings

Importing jaxcnn changes nothing in the process: the malloc settings
(:func:`jaxcnn.native.malloc.keep_freed_memory`) are applied by the entry
points that own the process (the ``jaxcnn`` command, ``train_and_evaluate``,
the benchmark) or by a script's own call; the oneDNN kernels are compiled at
install (``python -m jaxcnn.native``), never on import or during tracing.
"""

__version__ = "0.1.0"
