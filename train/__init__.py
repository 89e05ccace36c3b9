"""Training (``python -m train``). Kept free of Keras, so the command line can be checked before it loads."""

# MobileNetV2 layers whose pooled features the head reads, joined by "+" (train.model.feature_layers):
# the middle and the last layer. Why these two: train.model's docstring.
DEFAULT_FEATURE_LAYER = "block_12_add+out_relu"
