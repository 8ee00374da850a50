"""``python -m drumfire``: the ``drumfire`` command, where its script is not on the PATH."""

from drumfire.cli import entry

if __name__ == "__main__":
    entry()
