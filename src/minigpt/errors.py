"""The one exception type that means "the user asked for something we cannot do".

Everything the command line reports as a one-line message (exit code 2, no traceback) is raised as
a `UserError` somewhere below it. Anything else that escapes is a bug in our code and keeps its
traceback so it can be reported.
"""


class UserError(Exception):
    """A problem with the user's input: bad option, missing file, mismatched checkpoint, ...

    The message should say what is wrong and what to do about it, in one line.
    """
