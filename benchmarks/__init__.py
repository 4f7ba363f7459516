"""Speed and scale benchmarks of the attention circuits (``python -m benchmarks.attention``)."""
