"""jaxcnn.data."""
