"""`python -m jaxcnn ...` is the `jaxcnn` command."""
from jaxcnn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
