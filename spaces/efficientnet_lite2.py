"""Transfer space `efficientnet-lite2` (260 px native): `efficientnet-lite0`'s space on EfficientNet-Lite2.

Everything but the backbone is Lite0's (spaces/efficientnet_lite0.py); :func:`~spaces.efficientnet_lite0.lite_space` makes it.
"""

from spaces.efficientnet_lite0 import lite_space

globals().update(lite_space("lite2", native=260))
