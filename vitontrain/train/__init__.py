"""Training StableVITON: the config (``config``), the model's starting weights and slim checkpoints (``weights``),
the Lightning system (``system``), callbacks (``callbacks``) and the run assembly (``fit``)."""
