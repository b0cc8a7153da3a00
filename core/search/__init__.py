"""Similarity search: building the FAISS index and answering ``similar`` queries."""
