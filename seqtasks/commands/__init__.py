"""One module per ``seqtasks`` command: ``add_arguments(parser)`` and ``run(options, parser)``.

Only the standard library is imported at module level, so ``seqtasks COMMAND --help`` answers at once.
"""
