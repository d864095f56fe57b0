"""Runs anchors/tf_bench.py ps|worker unchanged, except that non-chief workers check every 0.5 s (not
TensorFlow's default 30 s) whether the chief has initialised the variables.

With the default, a worker that asks before the chief is ready sleeps 30 s and then trains alone after
the chief has finished, and adding the workers' examples/s would count two solo runs as one concurrent
one. Same arguments as tf_bench.py.
"""
import os, runpy, sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
from tensorflow.python.training import session_manager

_init = session_manager.SessionManager.__init__


def _init_quick(self, *args, recovery_wait_secs=30, **kwargs):
    _init(self, *args, recovery_wait_secs=0.5, **kwargs)


session_manager.SessionManager.__init__ = _init_quick
here = os.path.dirname(os.path.abspath(__file__))
sys.argv = [os.path.join(here, "tf_bench.py")] + sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
