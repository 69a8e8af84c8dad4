"""Training: the one optimisation loop, data-parallel helpers, and what a model is trained on
(the distillation targets and their loaders). Dataset I/O is hyperinr.data; models are
hyperinr.models."""
