"""``python -m jaxcnn.native``: build the oneDNN kernels now, load them, and say where they are (or why not).

Exit status 0 when they are loaded, 1 otherwise; the compiler's output is in
``build.log`` beside the library.
"""
import sys

from jaxcnn.native import BUILD_LOG_NAME, NativeBuildError, build, status


def main() -> int:
    try:
        library = build()
    except NativeBuildError as error:
        print(f"oneDNN convolution kernels not built: {error}")
        return 1
    log = library.parent / BUILD_LOG_NAME
    if log.is_file():
        print(f"compiler output: {log}")
    current = status()
    print(current)
    return 0 if current.loaded else 1


if __name__ == "__main__":
    sys.exit(main())
