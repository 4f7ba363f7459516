"""The transformer on spikes: all-MiniLM-L6-v2 and one forward pass with pluggable block executors.

``transformer.minilm`` loads and checks the model and holds its arithmetic (NumPy);
``transformer.forward`` is the forward pass, which owns the embeddings, residuals, LayerNorms and
pooling and hands each layer's attention and feed-forward blocks to an executor;
``transformer.executors`` has the NumPy reference and the spiking executor (circuits on any runner);
``transformer.bill`` counts what a pass spent (spikes, synaptic events, NumPy multiply-accumulates)
and its energy (docs/model.md §10).
"""
