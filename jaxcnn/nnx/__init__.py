"""Flax NNX front end: jaxcnn's layers and model zoo as stateful ``nnx.Module`` s."""
