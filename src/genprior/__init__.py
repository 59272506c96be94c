"""genprior: generative models as priors for inverse problems.

A generator G maps a small latent code z to a signal x = G(z). Given measurements
y = A(x) + noise, genprior recovers x by searching the latent space of G, and compares the
result with classical baselines.

Layers, each importing only those before it: ``data``, ``operators``, ``priors``,
``solvers``, ``experiments``, ``cli``.
"""

__version__ = "0.1.0"
