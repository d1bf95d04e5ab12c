"""File formats: the torch-free PyTorch reader, params files, key trees, model directories."""
