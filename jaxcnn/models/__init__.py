"""jaxcnn.models."""
