"""jaxcnn: convolutional neural networks in functional JAX, compiled by XLA.

Layers of the package (dependencies point down this list only):
    jaxcnn.functional  pure jnp/lax ops (conv, pool, norm, activations, losses, filters)
    jaxcnn.nn          Flax linen modules that hold params/state and call functional
    jaxcnn.models      LeNet-5, AlexNet, VGG, GoogLeNet, ResNet and a name registry
    jaxcnn.data        datasets and input pipelines
    jaxcnn.train       train state, jit/pmap/sharded steps, loop, checkpoints
"""

__version__ = "0.1.0"
