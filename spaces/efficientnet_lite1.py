"""Transfer space `efficientnet-lite1` (240 px native): `efficientnet-lite0`'s space on EfficientNet-Lite1.

Everything but the backbone is Lite0's (spaces/efficientnet_lite0.py); :func:`~spaces.efficientnet_lite0.lite_space` makes it.
"""

from spaces.efficientnet_lite0 import lite_space

globals().update(lite_space("lite1", native=240))
