"""Search spaces: what a model may look like.  Knows Keras; never data, storage or CLI."""

from spaces.registry import Space, SpaceError, check_build, check_warm_start, get_space, list_spaces, parameters

__all__ = ["Space", "SpaceError", "check_build", "check_warm_start", "get_space", "list_spaces", "parameters"]
