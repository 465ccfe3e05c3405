"""Unsupervised representations of MNIST digits at about 5 non-zeros per digit: the MNIST run of
``benchmarks/unsupervised_dictionaries.py`` (same options; see its docstring).

    python benchmarks/unsupervised_mnist.py --ckpt PATH/last.ckpt
"""

from unsupervised_dictionaries import main  # benchmarks/ is on the path

if __name__ == "__main__":
    main(data="mnist5k")
