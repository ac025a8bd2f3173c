"""``python -m jaxcnn.native``: build the oneDNN kernels now and say where they are (or why not)."""
import sys

from jaxcnn.native import status

if __name__ == "__main__":
    line = status()
    print(line)
    sys.exit(0 if "loaded" in line else 1)
