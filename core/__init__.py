"""NFT Lens engine: ingest, embed, index and search NFT collections, with no chat library."""
