"""Parameter-space geometry in normalised units [0, 1]^P: where encoders and distillation
parameters sit (`positions`), and which of them a query falls between with what weights
(`weights`: linear in 1-D, inverse-distance over the K nearest in n-D, periodic axes wrapped)."""
