"""roastcore: train, diagnose and fix autoregressive models of coffee-roast temperature curves."""

import logging

from roastcore.profile import Profile, ProfileError, ProfileMeta, c_to_f, f_to_c

__version__ = "0.1.0"
__all__ = ["Profile", "ProfileError", "ProfileMeta", "c_to_f", "f_to_c", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
