"""mfcbench: reproduce 'Multiscale Training of Convolutional Neural Networks' from code.

Layers -> models -> tasks/strategies -> runner -> workflow -> report; each arrow one way.
"""

__version__ = "0.1.0"
