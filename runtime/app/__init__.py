"""The application layer: the command line, its one config tree and pen-source opener, the live UI, eval and bench commands. Nothing below it imports it."""
