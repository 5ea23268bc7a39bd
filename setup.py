"""One build for the Rust extension (setuptools-rust) and the Cython kernels (cythonize).

`pip install .` runs both. Set AURUM_DEBUG_BUILD=1 for a fast unoptimised Rust build while
developing; the default is the release profile (fat LTO).
"""

import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools_rust import Binding, RustExtension

DEBUG = os.environ.get("AURUM_DEBUG_BUILD") == "1"

# Every kernel in python/aurum/kernels/ is built the same way: adding a .pyx is enough.
cython_kernels = [
    Extension(
        f"aurum.kernels.{path.stem}",
        [str(path)],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # No fused multiply-adds: the compiled kernels must give the plain-Python references'
        # bits on every architecture (GCC contracts a*b+c by default where FMA exists).
        extra_compile_args=["-O3", "-ffp-contract=off"],
    )
    for path in sorted(Path("python/aurum/kernels").glob("*.pyx"))
]

setup(
    package_dir={"": "python"},
    packages=find_packages("python"),
    package_data={"aurum": ["_native.pyi", "py.typed"], "aurum.kernels": ["*.pyx", "*.pxd", "*.pyi"],
                  "aurum.api": ["static/*.html"]},
    rust_extensions=[
        RustExtension(
            "aurum._native",
            path="Cargo.toml",
            binding=Binding.PyO3,
            features=["python", "pyo3/extension-module"],
            debug=DEBUG,
        )
    ],
    ext_modules=cythonize(
        cython_kernels,
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False},
    ),
    zip_safe=False,
)
