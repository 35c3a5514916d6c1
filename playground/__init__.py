"""Generative Models Playground: small GANs, VAEs, flows, autoregressive and diffusion models
trained live on a CPU.

Everything here is plain Python + PyTorch and imports no Gradio, so the command
line, the tests and the app all call the same functions.
"""

__version__ = "0.1.0"
