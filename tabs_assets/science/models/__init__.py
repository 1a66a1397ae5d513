"""Models (SCIENCE.md §2): MLP classifier, NICE flow, AE/VAE, Lightning training and storage."""
