# Install jaxcnn unless it is already importable (the repository's .venv, or a second run).
# jaxcnn sets no upper bound on jax/jaxlib, so pip keeps the runtime's JAX and its TPU/GPU plugin.
# A wheel built by `make wheel` and uploaded next to the notebook is used first; otherwise
# pip installs from the project's repository (the URL in pyproject.toml [project.urls]).
import glob, importlib.util, subprocess, sys
if importlib.util.find_spec("jaxcnn") is None:
    wheels = sorted(glob.glob("jaxcnn-*.whl"))
    source = wheels[-1] if wheels else "jaxcnn @ git+https://github.com/jaxcnn/jaxcnn"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
