"""Test-wide setup.

Multi-device code (pmap, jit+NamedSharding) is tested on CPU by asking XLA for
four host devices. The flag is read once, when jax first initialises its
backend, so it is set here before any test module imports jax.
"""
import os

_FLAG = "--xla_force_host_platform_device_count=4"
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

# The jaxcnn command keeps compiled programs in ~/.cache/jaxcnn/xla by default; the
# tests stay hermetic (tests/train/test_compilation_cache.py turns it on explicitly).
os.environ.setdefault("JAXCNN_COMPILATION_CACHE", "off")
