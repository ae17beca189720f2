"""Build the Cython kernels in csrc/ as extension modules of the layers that use them
(format._codec, torch._gather), so the import graph shows each kernel inside its layer."""

from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = ["-O3", "-fno-strict-aliasing"]

extensions = [
    Extension("samplestore.format._codec", ["csrc/codec.pyx"], extra_compile_args=COMPILE_ARGS),
    Extension("samplestore.torch._gather", ["csrc/gather.pyx"], extra_compile_args=COMPILE_ARGS),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
