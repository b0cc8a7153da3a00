"""Image decoding, canonical preprocessing for embedding, and safe URL fetching."""
