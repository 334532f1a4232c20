"""Imported first by the local pools' forkserver (`vitonprep.runner.FORKSERVER_PRELOAD`), and by nothing else: the
server then dies with the build that started it, and so (through their own guard) do the workers forked from it."""

import os

from vitonprep.runner import die_with_parent

die_with_parent(os.getppid())
