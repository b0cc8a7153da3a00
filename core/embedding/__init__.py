"""Image embeddings: the embedder interface, VGG16 on Keras, and the batching pipeline."""
