"""Model-free and model-backed preprocessing back-ends of vitonprep."""
