"""Search spaces: what a model may look like.  Knows Keras; never data, storage or CLI."""

from spaces.registry import Space, SpaceError, get_space, list_spaces

__all__ = ["Space", "SpaceError", "get_space", "list_spaces"]
