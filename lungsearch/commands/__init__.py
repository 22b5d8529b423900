"""One module per command; each has ``register(subparsers)``.  Add new ones to COMMANDS."""

COMMANDS = (
    "lungsearch.commands.run",
    "lungsearch.commands.report",
    "lungsearch.commands.refine",
    "lungsearch.commands.best",
    "lungsearch.commands.dashboard",
    "lungsearch.commands.data",
    "lungsearch.commands.predict",
    "lungsearch.commands.evaluate",
    "lungsearch.commands.spaces",
    "lungsearch.commands.studies",
)
